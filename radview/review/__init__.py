"""Review of a model against current labels, the fastai way but at study level.

numpy only, returns data, never plots (the PNG report lives in `radview.review.report`, which
needs Pillow and nothing else). Typical use::

    data = build_review(study_predictions, truths, threshold=0.5, manifest=manifest)
    # manifest: only studies whose label space the model predicts join (radview.spaces)
    interp = Interpretation(data)
    interp.top_losses(9); interp.confusion_matrix(); interp.most_confused(2)
    interp.metrics()            # accuracy, kappa, AUROC, sens/spec + bootstrap 95% CIs
    summary = summarize(data)   # everything at once; summary_to_dict(summary) for JSON
"""
from radview.review.bootstrap import Interval, bootstrap_metrics
from radview.review.data import (ReviewSet, Truth, build_review, class_index, comparable_truths,
                                 cross_entropy, mapped_index, truths_from_studies)
from radview.review.interpretation import (ClassMetrics, ConfusedPair, Interpretation, Metrics,
                                           TopLoss, ViewLoss)
from radview.review.metrics import (ThresholdSweep, accuracy, auroc, auroc_ovr, binary_call,
                                    cohen_kappa, confusion_matrix, kappa_from_confusion,
                                    roc_curve, sensitivity_specificity, threshold_sweep)
from radview.review.summary import ReviewSummary, iter_summarize, summarize, summary_to_dict
from radview.review.thresholds import (SiteThreshold, clear_site_threshold, effective_threshold,
                                       save_site_threshold, site_threshold)

__all__ = [
    "Interval", "bootstrap_metrics",
    "ReviewSet", "Truth", "build_review", "class_index", "cross_entropy", "truths_from_studies",
    "comparable_truths", "mapped_index",
    "ClassMetrics", "ConfusedPair", "Interpretation", "Metrics", "TopLoss", "ViewLoss",
    "ThresholdSweep", "accuracy", "auroc", "auroc_ovr", "binary_call", "cohen_kappa",
    "confusion_matrix", "kappa_from_confusion", "roc_curve", "sensitivity_specificity",
    "threshold_sweep",
    "ReviewSummary", "iter_summarize", "summarize", "summary_to_dict",
    "SiteThreshold", "clear_site_threshold", "effective_threshold", "save_site_threshold",
    "site_threshold",
]
