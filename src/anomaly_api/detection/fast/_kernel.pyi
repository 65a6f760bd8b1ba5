# Type stub of the C extension built from _kernel.c.
from typing import Any

LEAF: int
LRD_EPSILON: float

def knn(
    X: Any, train_t: Any, k: int, dist: Any, ind: Any, ties: Any, n_threads: int, /
) -> None: ...
def knn_blocks(
    X: Any,
    rows: Any,
    screen: Any,
    index: Any,
    starts: Any,
    lo: Any,
    hi: Any,
    groups: Any,
    group_lo: Any,
    group_hi: Any,
    k: int,
    dist: Any,
    ind: Any,
    ties: Any,
    n_threads: int,
    /,
) -> None: ...
def score_rows(
    X: Any,
    dist: Any,
    ind: Any,
    roots: Any,
    feature: Any,
    threshold: Any,
    left: Any,
    right: Any,
    leaf_value: Any,
    denominator: float,
    k_distance: Any,
    lrd: Any,
    center: Any,
    scale: Any,
    out: Any,
    /,
) -> None: ...
def compiled_model(
    center: Any,
    scale: Any,
    rows: Any,
    screen: Any,
    index: Any,
    starts: Any,
    lo: Any,
    hi: Any,
    groups: Any,
    group_lo: Any,
    group_hi: Any,
    k: int,
    roots: Any,
    feature: Any,
    threshold: Any,
    left: Any,
    right: Any,
    leaf_value: Any,
    denominator: float,
    k_distance: Any,
    lrd: Any,
    z_center: Any,
    z_scale: Any,
    /,
) -> object: ...
def explain_rows(
    model: object,
    X: Any,
    offsets: Any,
    scales: Any,
    min_votes: int,
    scores: Any,
    votes: Any,
    anomaly: Any,
    severity: Any,
    is_anomaly: Any,
    shares: Any,
    n_threads: int,
    /,
) -> int: ...
def check_forest(feature: Any, left: Any, right: Any, n_features: int, /) -> None: ...
def pairwise_sum(values: Any, start: int, n: int, /) -> float: ...
