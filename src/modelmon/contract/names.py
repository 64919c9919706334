"""The name, type, help text and label names of every series modelmon exports.

Everything that reads a metric - the metrics code that creates it, the recording and alert
rules, their promtool cases, the dashboards and the README's metrics reference - takes its
name from here, so a rename cannot miss a reader. Label *values* that are fixed lists (the
reasons of a refusal, the sides of a range) live here too: they bound the series count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.utils import floatToGoString

from modelmon.contract.reasons import INVALID_REASONS

Kind = Literal["counter", "gauge", "histogram"]

# Label names shared by many families.
MODEL = "model"
FEATURE = "feature"
CLASS = "class"
# The model version that made a prediction: bounded by the versions one process has served
# since it started (a label for an older version, read back from the prediction log, is `other`).
VERSION = "version"
# The upper bound of a reference-CDF point. Not `le`: Prometheus reserves `le` for histogram
# buckets, and `promtool check metrics` refuses it on a gauge.
BOUND = "bound"


@dataclass(frozen=True)
class Family:
    """One exported metric family. `name` is the family name (a counter's without `_total`)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    values: str = ""  # what the label values are, for the README (fixed lists are spelt there)

    @property
    def total(self) -> str:
        assert self.kind == "counter", self.name
        return self.name + "_total"

    @property
    def bucket(self) -> str:
        assert self.kind == "histogram", self.name
        return self.name + "_bucket"

    @property
    def count(self) -> str:
        assert self.kind == "histogram", self.name
        return self.name + "_count"

    @property
    def sum(self) -> str:
        assert self.kind == "histogram", self.name
        return self.name + "_sum"

    @property
    def exported(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this family."""
        if self.kind == "counter":
            return (self.total,)
        if self.kind == "histogram":
            return (self.bucket, self.count, self.sum)
        return (self.name,)

    @property
    def reference_name(self) -> str:
        """How the README's reference names it (a counter by its `_total` series)."""
        return self.total if self.kind == "counter" else self.name


# Bounded label values. Invalid-input reasons: contract.reasons (a Literal type).
FEEDBACK_REJECTIONS = ("unknown_request_id", "duplicate", "invalid_label", "invalid_body", "log_off")
LOG_DROP_REASONS = ("queue_full", "write_error", "duplicate_id")  # duplicate_id: the model logged that id already
OUT_OF_RANGE_SIDES = ("below", "above")
EVENT_HALVES = ("request", "response")  # the two CloudEvents KServe's logger sends per inference
EVENT_OUTCOMES = ("joined", "unmatched", "late", "duplicate", "invalid")
ERROR_DIRECTIONS = ("over", "under")  # a regressor's prediction above or below the truth
PREDICT_PATHS = ("matrix", "dataframe", "pyfunc")  # how rows reach the model: model.LoadedModel.predict_path
RELOAD_RESULTS = ("switched", "failed")  # following a registry alias: a new version serves, or it could not load
OTHER = "other"  # any class (or handler, method) outside the bounded set
PREDICT_ROUTE = "/predict"
INVOCATIONS_ROUTE = "/invocations"  # MLflow's scoring protocol
# The routes that score rows: request rate, errors and latency are read over their `handler`s.
SCORING_ROUTES = (PREDICT_ROUTE, INVOCATIONS_ROUTE)


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values)


_VERSIONS = "`version`: the model version that predicted (the registry's version number, else the MLflow model's id)"
PREDICTIONS = Family("modelmon_predictions", "counter", "Predicted rows, by model version and predicted class label.",
                     (MODEL, VERSION, CLASS),
                     f"{_VERSIONS}; `class`: the profile's class labels, `{OTHER}` for anything else; empty for a "
                     "regressor")
PREDICTION_PROBABILITY = Family(
    "modelmon_prediction_probability", "histogram",
    "Predicted probability of the positive class (binary models, or positive_class set).", (MODEL,),
    "buckets 0.05 ... 1")
PREDICTION_REFERENCE_RATIO = Family(
    "modelmon_prediction_reference_ratio", "gauge",
    "Share of each class among the model's predictions on the training data.", (MODEL, CLASS))
FEATURE_LAST_VALUE = Family("modelmon_feature_last_value", "gauge",
                            "Last observed value of each input feature (the workshop's gauges).", (MODEL, FEATURE))
FEATURE_VALUE = Family(
    "modelmon_feature_value", "histogram",
    "Observed input values; buckets are the feature's edges (configured, else the training deciles).",
    (MODEL, FEATURE),
    "no `_sum` series for a feature whose first edge is negative: a sum of values that may be negative is not "
    "a counter, so prometheus_client (as OpenMetrics asks) leaves it out; modelmon's rules and panels read "
    "only the buckets and `_count`")
FEATURE_QUANTILE = Family(
    "modelmon_feature_quantile", "histogram",
    "Reference-CDF rank F_ref(x) of each input value, buckets 0.1 ... 1.0: uniform when inputs have not "
    "drifted, so one drift rule serves every feature.", (MODEL, FEATURE))
FEATURE_QUANTILE_REFERENCE = Family(
    "modelmon_feature_quantile_reference", "gauge",
    "Share of training rows whose rank F_ref(x) is <= bound: the no-drift CDF of modelmon_feature_quantile "
    "(exact even with ties).", (MODEL, FEATURE, BOUND), "`bound`: each bucket bound of modelmon_feature_quantile")
FEATURE_VALUE_REFERENCE = Family(
    "modelmon_feature_value_reference", "gauge",
    "Share of training values <= bound, at the edges of modelmon_feature_value, to draw live against training.",
    (MODEL, FEATURE, BOUND), "`bound`: each bucket bound of modelmon_feature_value")
FEATURE_OUT_OF_RANGE = Family(
    "modelmon_feature_out_of_range", "counter",
    "Input values outside the training range (served, unlike values outside the validity bounds).",
    (MODEL, FEATURE, "side"), f"`side`: {_one_of(OUT_OF_RANGE_SIDES)}")
FEATURE_CATEGORY = Family(
    "modelmon_feature_category", "counter",
    "Values of each categorical input, by category: the training categories (at most 30), "
    f"`{OTHER}` for the rest and for unseen ones.", (MODEL, FEATURE, "category"),
    f"`category`: the profile's categories of the feature and `{OTHER}`")
FEATURE_CATEGORY_REFERENCE = Family(
    "modelmon_feature_category_reference", "gauge",
    "Share of each category among the training values of a categorical input: the no-drift shares.",
    (MODEL, FEATURE, "category"), "`category`: as modelmon_feature_category_total")
FEATURE_UNSEEN_CATEGORY = Family(
    "modelmon_feature_unseen_category", "counter",
    f"Values of a categorical input that training never had (also counted as `{OTHER}`).", (MODEL, FEATURE))
FEATURE_MISSING = Family(
    "modelmon_feature_missing", "counter",
    "Rows served with this input missing (null or absent), for the inputs that may be missing.", (MODEL, FEATURE))
FEATURE_MISSING_REFERENCE = Family(
    "modelmon_feature_missing_reference", "gauge",
    "Share of training rows with this input missing, for the inputs that may be missing.", (MODEL, FEATURE))
PREDICTION_VALUE = Family(
    "modelmon_prediction_value", "histogram",
    "A regressor's predicted values; buckets at the deciles of its predictions on the training data.", (MODEL,),
    "no `_sum` series when the first decile is negative (as for modelmon_feature_value)")
PREDICTION_QUANTILE = Family(
    "modelmon_prediction_quantile", "histogram",
    "Reference-CDF rank of each predicted value of a regressor, buckets 0.1 ... 1.0: uniform when its "
    "predictions have not drifted.", (MODEL,))
PREDICTION_QUANTILE_REFERENCE = Family(
    "modelmon_prediction_quantile_reference", "gauge",
    "Share of the training predictions whose rank is <= bound: the no-drift CDF of modelmon_prediction_quantile.",
    (MODEL, BOUND), "`bound`: each bucket bound of modelmon_prediction_quantile")
PREDICTION_VALUE_REFERENCE = Family(
    "modelmon_prediction_value_reference", "gauge",
    "Share of the training predictions <= bound, at the edges of modelmon_prediction_value.",
    (MODEL, BOUND), "`bound`: each bucket bound of modelmon_prediction_value")
ABSOLUTE_ERROR = Family(
    "modelmon_prediction_absolute_error", "histogram",
    "A regressor's |predicted - actual| for each labelled prediction, in the target's unit; buckets are "
    "multiples of its training MAE, the count is the labels received.", (MODEL, VERSION), _VERSIONS)
SQUARED_ERROR = Family("modelmon_prediction_squared_error", "counter",
                       "Sum of a regressor's squared errors over labelled predictions (for RMSE).", (MODEL, VERSION),
                       _VERSIONS)
SIGNED_ERROR = Family(
    "modelmon_prediction_signed_error", "counter",
    "Sum of a regressor's errors by direction: predicted - actual where positive (`over`), actual - "
    "predicted where positive (`under`); bias is their difference per label.", (MODEL, VERSION, "direction"),
    f"{_VERSIONS}; `direction`: {_one_of(ERROR_DIRECTIONS)}")
INVALID_REQUESTS = Family("modelmon_invalid_requests", "counter", "Rejected requests, by reason.",
                          (MODEL, "reason"), f"`reason`: {_one_of(INVALID_REASONS)}")
REQUEST_DURATION = Family(
    "modelmon_request_duration_seconds", "histogram",
    "HTTP request latency, by handler (route template), method and status class.", ("handler", "method", "status"),
    f"`handler`: the route template (`{OTHER}` for unknown paths; the service rules read "
    f"{_one_of(tuple(f'`{r}`' for r in SCORING_ROUTES))}); `status`: `2xx`, `4xx`, ...")
MODEL_PREDICT_SECONDS = Family(
    "modelmon_model_predict_seconds", "histogram",
    "Time each request's rows spent inside the model's predict call (one observation per request, also when "
    "requests share a call).", (MODEL,))
BATCH_ROWS = Family("modelmon_batch_rows", "histogram",
                    "Rows per model call: concurrent requests are micro-batched into one call.", (MODEL,))
MODEL_INFO = Family(
    "modelmon_model_info", "gauge",
    "The model version serving now (1), and those this process served before (0: a switch shows where one "
    "series goes to 0 and another to 1).",
    (MODEL, VERSION, "run_id", "flavor", "registered_name", "alias", "predict_path"),
    "`registered_name`, `alias`: the Model Registry's name and the alias followed (empty for a folder); "
    f"`predict_path`: how rows reach the model, {_one_of(PREDICT_PATHS)} (`matrix` is the fast path; a numeric "
    "model on `dataframe` answers a matrix differently, and the server's log says how)")
MODEL_RELOADS = Family(
    "modelmon_model_reloads", "counter",
    "Times the followed registry alias moved to a new version: loaded and switched to, or failed to load (the "
    "old version kept serving).", (MODEL, "result"), f"`result`: {_one_of(RELOAD_RESULTS)}")
FEEDBACK = Family(
    "modelmon_feedback", "counter",
    "Labelled predictions (ground truth received), by the version that predicted, actual and predicted class: "
    "the confusion matrix (every cell exists from the start).", (MODEL, VERSION, "actual", "predicted"), _VERSIONS)
EXPECTED_CONFUSION = Family(
    "modelmon_expected_confusion", "counter",
    "Estimated quality without labels: for each predicted row, its calibrated probability of each actual "
    "class, by version, predicted and actual class (each row adds 1 in all; every cell exists from the start).",
    (MODEL, VERSION, "actual", "predicted"), _VERSIONS)
FEEDBACK_REJECTED = Family("modelmon_feedback_rejected", "counter", "Feedback items refused, by reason.",
                           (MODEL, "reason"), f"`reason`: {_one_of(FEEDBACK_REJECTIONS)}")
FEEDBACK_DELAY = Family("modelmon_feedback_delay_seconds", "histogram",
                        "Time from a prediction to its ground-truth label.", (MODEL,), "buckets 1 s ... 30 d")
LOG_WRITTEN = Family("modelmon_prediction_log_written", "counter", "Predictions written to the prediction log.",
                     (MODEL,))
LOG_DROPPED = Family(
    "modelmon_prediction_log_dropped", "counter",
    "Predictions never written to the log: queue full (oldest dropped) or the store failed.", (MODEL, "reason"),
    f"`reason`: {_one_of(LOG_DROP_REASONS)}")
LOG_PRUNED = Family("modelmon_prediction_log_pruned", "counter",
                    "Logged predictions deleted by retention (age or row limit).", (MODEL,))
LOG_QUEUE = Family("modelmon_prediction_log_queue_rows", "gauge",
                   "Predictions waiting in memory to be written to the log (summed over workers).", (MODEL,))

COLLECTOR_EVENTS = Family(
    "modelmon_collector_events", "counter",
    "Logged inference halves the collector received, by half and outcome: joined with the other half, "
    "unmatched (the other half never came within the wait), late (came after its partner gave up), "
    "duplicate, or invalid (unreadable).", (MODEL, "half", "outcome"),
    f"`half`: {_one_of(EVENT_HALVES)}; `outcome`: {_one_of(EVENT_OUTCOMES)}")

FAMILIES: tuple[Family, ...] = (
    PREDICTIONS, PREDICTION_PROBABILITY, FEATURE_LAST_VALUE, FEATURE_VALUE, FEATURE_QUANTILE,
    FEATURE_QUANTILE_REFERENCE, FEATURE_VALUE_REFERENCE, FEATURE_OUT_OF_RANGE, PREDICTION_REFERENCE_RATIO,
    FEATURE_CATEGORY, FEATURE_CATEGORY_REFERENCE, FEATURE_UNSEEN_CATEGORY, FEATURE_MISSING, FEATURE_MISSING_REFERENCE,
    PREDICTION_VALUE, PREDICTION_QUANTILE, PREDICTION_QUANTILE_REFERENCE, PREDICTION_VALUE_REFERENCE,
    ABSOLUTE_ERROR, SQUARED_ERROR, SIGNED_ERROR,
    INVALID_REQUESTS, REQUEST_DURATION, MODEL_PREDICT_SECONDS, BATCH_ROWS, MODEL_INFO, MODEL_RELOADS, FEEDBACK,
    EXPECTED_CONFUSION, FEEDBACK_REJECTED, FEEDBACK_DELAY, LOG_WRITTEN, LOG_DROPPED, LOG_PRUNED, LOG_QUEUE,
    COLLECTOR_EVENTS,
)


def bound_label(bound: float) -> str:
    """A bucket bound written exactly as prometheus_client writes `le`, so the two join."""
    return str(floatToGoString(bound))


def metrics_reference() -> str:
    """The README's metrics table, made from FAMILIES."""
    lines = ["| metric | type | labels | what |", "|---|---|---|---|"]
    for f in FAMILIES:
        what = f.help + (f" {f.values}." if f.values else "")
        lines.append(f"| `{f.reference_name}` | {f.kind} | {', '.join(f.labels)} | {what} |")
    return "\n".join(lines)
