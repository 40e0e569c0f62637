"""Pieces of the body-part recipe (scripts/train_body_part.py): synthetic "other" patterns, the
augmentation that breaks the framing shortcut, the linear head on cached features (per-source
balanced weights, feature-level mixup) and the out-of-domain scores compared for the gate.

Why this augmentation (issue 13): trained without Kermany, paediatric chests (a small body in a
square frame, much of the abdomen visible, 224 px) were called `abdomen`, because the only
abdominal source (Open-i figures) differs from the adult chest films in framing, size and
resolution as much as in anatomy. `augment` therefore varies exactly those: zoom-out onto a
padded canvas of random aspect (a small body in the frame), crops, aspect squash, resolution loss
(down- then up-sampling), blur, noise, gamma/contrast, inverted polarity (MONOCHROME1-like) and
figure furniture (borders, arrows, label bars). Nothing in it looks at any held-out source.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- synthetic "other"


def synthetic_image(i: int, seed: int) -> np.ndarray:
    """Pattern number i (8 kinds: noise, checkerboard, gradient, disc, stripes, smooth blobs,
    text-like bars, flat noise), float32 HxW in [0, 1]."""
    rng = np.random.default_rng(seed * 1000 + i)
    s = int(rng.choice([128, 224, 320]))
    yy, xx = np.mgrid[0:s, 0:s] / float(s)
    kind = i % 8
    if kind == 0:
        img = rng.random((s, s))
    elif kind == 1:
        k = int(rng.integers(2, 16))
        img = ((xx * k).astype(int) + (yy * k).astype(int)) % 2 * 1.0
    elif kind == 2:
        a = rng.uniform(0, 2 * np.pi)
        img = np.cos(a) * xx + np.sin(a) * yy
    elif kind == 3:
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.4)
        img = (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r) * rng.uniform(0.5, 1)
    elif kind == 4:
        f = rng.uniform(2, 30)
        img = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx if rng.random() < 0.5 else yy))
    elif kind == 5:  # smooth blobs (low-frequency noise)
        small = rng.random((int(rng.integers(3, 12)),) * 2).astype(np.float32)
        img = np.asarray(Image.fromarray(small, mode="F").resize((s, s), Image.Resampling.BICUBIC))
    elif kind == 6:  # text-like: random dark bars on light paper
        img = np.ones((s, s)) * rng.uniform(0.7, 1.0)
        for _ in range(int(rng.integers(5, 30))):
            y0, x0 = rng.integers(0, s - 4, 2)
            img[y0:y0 + int(rng.integers(2, 6)), x0:x0 + int(rng.integers(5, s // 2))] = rng.uniform(0, 0.3)
    else:  # uniform with gaussian noise
        img = np.full((s, s), rng.uniform(0, 1)) + rng.normal(0, rng.uniform(0.01, 0.2), (s, s))
    return np.clip(img, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- augmentation


def _pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (PIL's blur does not take float images)."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / max(sigma, 1e-3)) ** 2)
    k = (k / k.sum()).astype(np.float32)
    p = np.pad(a, r, mode="edge")
    p = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, p)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, p).astype(np.float32)


def _framing(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zoom-out onto a padded canvas (p 0.45), a crop (p 0.35) or the whole image; then the
    canvas aspect is changed (the model input is a squash resize, so this is an aspect change)."""
    h, w = a.shape
    r = rng.random()
    if r < 0.45:  # small body in a large frame
        s = float(rng.uniform(0.5, 0.95))
        ch = int(round(h / s * rng.uniform(0.85, 1.15)))
        cw = int(round(w / s * rng.uniform(0.85, 1.15)))
        ch, cw = max(ch, h), max(cw, w)
        bg = float(rng.choice([0.0, 1.0, np.median(a), float(a[:4].mean())]))
        canvas = np.full((ch, cw), bg, np.float32) + rng.normal(0, 0.01, (ch, cw)).astype(np.float32)
        y0, x0 = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))
        canvas[y0:y0 + h, x0:x0 + w] = a
        a = canvas
    elif r < 0.80:  # a crop: 55-100 % of the area, aspect 0.75-1.33
        area = float(rng.uniform(0.55, 1.0))
        asp = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
        ch = int(min(h, round(np.sqrt(area * h * w / asp))))
        cw = int(min(w, round(np.sqrt(area * h * w * asp))))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        a = a[y0:y0 + ch, x0:x0 + cw]
    h, w = a.shape
    asp = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    nh, nw = max(8, int(round(h * np.sqrt(asp)))), max(8, int(round(w / np.sqrt(asp))))
    return np.asarray(_pil(a).resize((nw, nh), Image.Resampling.BILINEAR), np.float32)


def _furniture(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Journal-figure furniture: a border, an arrow-like wedge, label bars."""
    a = a.copy()
    h, w = a.shape
    k = int(rng.integers(0, 3))
    if k == 0:  # border
        b = max(1, int(min(h, w) * rng.uniform(0.01, 0.05)))
        v = float(rng.choice([0.0, 1.0]))
        a[:b], a[-b:], a[:, :b], a[:, -b:] = v, v, v, v
    elif k == 1:  # arrow: a thin line with a head
        y, x = int(rng.integers(h // 5, 4 * h // 5)), int(rng.integers(w // 5, 4 * w // 5))
        ln = int(min(h, w) * rng.uniform(0.08, 0.2))
        t = max(1, int(min(h, w) * 0.008))
        v = float(rng.choice([0.0, 1.0]))
        a[max(0, y - t):y + t, x:min(w, x + ln)] = v
        for d in range(min(ln // 3, 40)):
            a[max(0, y - d):y + d + 1, max(0, x + d // 2)] = v
    else:  # label bars (text-like)
        for _ in range(int(rng.integers(1, 4))):
            bh = max(2, int(h * rng.uniform(0.02, 0.05)))
            bw = max(4, int(w * rng.uniform(0.05, 0.25)))
            y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
            a[y0:y0 + bh, x0:x0 + bw] = float(rng.choice([0.0, 1.0]))
    return a


def augment(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of a float32 HxW [0,1] image (see the module doc)."""
    a = np.clip(np.asarray(gray, np.float32), 0, 1)
    if rng.random() < 0.5:
        a = a[:, ::-1]
    a = _framing(a, rng)
    h, w = a.shape
    ang = float(rng.uniform(-15, 15))
    a = np.asarray(_pil(a).rotate(ang, resample=Image.Resampling.BILINEAR, fillcolor=float(np.median(a))), np.float32)
    if rng.random() < 0.3:  # resolution loss: 20-60 % of the size, back up
        f = float(rng.uniform(0.2, 0.6))
        small = _pil(a).resize((max(16, int(w * f)), max(16, int(h * f))), Image.Resampling.BILINEAR)
        a = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    if rng.random() < 0.25:
        a = _blur(a, float(rng.uniform(0.5, 2.0)) * max(h, w) / 512)
    if rng.random() < 0.2:
        a = _furniture(a, rng)
    a = np.clip(a, 0, 1) ** float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    a = (a - 0.5) * float(rng.uniform(0.7, 1.3)) + 0.5 + float(rng.uniform(-0.1, 0.1))
    if rng.random() < 0.3:
        a = a + rng.normal(0, rng.uniform(0.005, 0.04), a.shape).astype(np.float32)
    if rng.random() < 0.2:
        a = 1.0 - a
    return np.clip(a, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- head


def source_balanced_weights(y: np.ndarray, groups: np.ndarray, n_classes: int) -> np.ndarray:
    """Every source carries equal total weight within its class, every class equal weight."""
    w = np.zeros(len(y), dtype=np.float64)
    for c in range(n_classes):
        cm = y == c
        ss = sorted(set(groups[cm]))
        for s in ss:
            m = cm & (groups == s)
            w[m] = 1.0 / (m.sum() * len(ss))
    return (w / w.mean()).astype(np.float32)


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_classes: int, epochs: int = 300, lr: float = 0.01,
             wd: float = 1e-3, mixup: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression on standardised features (full batch, AdamW, cosine LR, label
    smoothing 0.05), folded back to raw features: (W (K, D), b (K,)). mixup > 0: each epoch the
    rows are mixed with a permutation of themselves (lam ~ Beta(mixup, mixup), per row), targets
    and weights mixed alike (feature-level mixup)."""
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd).float()
    yt = torch.nn.functional.one_hot(torch.from_numpy(y).long(), n_classes).float() * 0.95 + 0.05 / n_classes
    wt = torch.from_numpy(w).float()
    lin = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    beta = torch.distributions.Beta(mixup, mixup) if mixup > 0 else None
    for _ in range(epochs):
        opt.zero_grad()
        if beta is not None:
            perm = torch.randperm(len(xt), generator=g)
            lam = beta.sample((len(xt), 1))
            xb = lam * xt + (1 - lam) * xt[perm]
            yb = lam * yt + (1 - lam) * yt[perm]
            wb = lam[:, 0] * wt + (1 - lam[:, 0]) * wt[perm]
            xb, yb, wb = torch.cat([xt, xb]), torch.cat([yt, yb]), torch.cat([wt, wb])
        else:
            xb, yb, wb = xt, yt, wt
        logp = torch.log_softmax(lin(xb), 1)
        loss = (-(yb * logp).sum(1) * wb).sum() / wb.sum()
        loss.backward()
        opt.step()
        sched.step()
    W = lin.weight.detach().numpy() / sd[None, :]
    b = lin.bias.detach().numpy() - (lin.weight.detach().numpy() * (mu / sd)[None, :]).sum(1)
    return W.astype(np.float32), b.astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------------------- gate scores


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def kmeans_cosine(x: np.ndarray, k: int, seed: int = 0, iters: int = 25) -> np.ndarray:
    """Spherical k-means of L2-normalised rows: (min(k, N), D) unit centres."""
    x = l2(np.asarray(x, np.float32))
    k = min(k, len(x))
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), k, replace=False)]
    for _ in range(iters):
        a = (x @ c.T).argmax(1)
        for j in range(k):
            m = a == j
            if m.any():
                c[j] = x[m].mean(0)
        c = l2(c)
    return c


def bank_similarity(bank: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Best cosine similarity of each row of f to the (unit) rows of bank."""
    return (l2(np.asarray(f, np.float32)) @ bank.T).max(1)


def mahalanobis_score(x: np.ndarray, groups, dim: int = 64):
    """fn(f) -> negative Mahalanobis distance of f to the nearest group mean, in a `dim`-d PCA of
    x (N, D) with a shared covariance shrunk towards its mean variance (1e-3)."""
    x = np.asarray(x, np.float64)
    names = sorted(set(groups))
    lab = np.asarray([names.index(g) for g in groups])
    mu = x.mean(0)
    v = np.linalg.svd(x - mu, full_matrices=False)[2][:dim].T
    z = (x - mu) @ v
    means = np.stack([z[lab == j].mean(0) for j in range(len(names))])
    r = z - means[lab]
    cov = r.T @ r / len(r)
    icov = np.linalg.inv(cov + 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov)))

    def score(f: np.ndarray) -> np.ndarray:
        zt = (np.asarray(f, np.float64) - mu) @ v
        return -np.stack([np.einsum("nd,de,ne->n", zt - m, icov, zt - m) for m in means], 1).min(1)
    return score


def centred_knn_score(x: np.ndarray):
    """fn(f) -> best cosine similarity to the rows of x after centring both on x's mean."""
    x = np.asarray(x, np.float64)
    mu = x.mean(0)
    bank = l2(x - mu)

    def score(f: np.ndarray) -> np.ndarray:
        return (l2(np.asarray(f, np.float64) - mu) @ bank.T).max(1)
    return score
