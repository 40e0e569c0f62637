"""Models: manifests, registry, inference, Grad-CAM, out-of-domain gate, overlays.

Importing this package imports neither torch nor torchvision; the submodules that need torch
import it (engine, cam, arch), and torchvision only when a torchvision architecture is built.

- `radview.models.manifest`: Manifest, load_manifest, write_manifest (no torch).
- `radview.models.registry`: list_models, get_model_info, load_model, import_model,
  select_device, configure_threads, ModelInfo, LoadedModel, ModelError.
- `radview.models.engine`: iter_predict, predict_frames, aggregate_study, predicted_class.
- `radview.models.cam`: grad_cam (gradcam, gradcam++, hirescam).
- `radview.models.domain`: metadata_verdict, FeatureGate, calibrate_threshold.
- `radview.models.overlay`: colormap_lut, blend_cam, draw_boxes, render_overlay (numpy/Pillow).
- `radview.models.preprocess`: Frame -> model input (shared with the training scripts).
- `radview.models.arch`: the architectures a manifest can name.
"""
