"""Global agglomeration of a region-adjacency graph (RAG) given as edge sums and counts, and relabelling.

:func:`mean_affinity_agglomeration` is waterz's hierarchical merging (``IterativeRegionMerging`` with
``OneMinus<MeanAffinity>``, read from waterz's C++ source) on the graph instead of the volume: repeatedly merge
the two adjacent regions whose edge score ``1 - sum/count`` is lowest while it is below the threshold; when two
regions merge, their edges to a common neighbour become one edge with the sums and counts added. On the same
RAG it gives waterz's partition (up to ties and float rounding: waterz keeps running float32 means, this
keeps float64 sums). :func:`threshold_components` is the simple alternative: connected components of the
initial edges scoring below the threshold (no updating of merged edges).

Nodes are dense indices 0..n-1; the RAG is ``(u, v)`` int arrays with ``u != v``, one row per pair.
"""

from __future__ import annotations

import heapq

import numpy as np


def edge_scores(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """waterz's ``OneMinus<MeanAffinity>`` score of each edge: 1 - mean affinity across it."""
    return 1.0 - np.asarray(sums, np.float64) / np.asarray(counts, np.float64)


def _check(n: int, u, v, *arrays):
    u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
    if u.shape != v.shape or any(np.shape(a) != u.shape for a in arrays):
        raise ValueError("edge arrays must all have the same length")
    if len(u) and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= n or np.any(u == v)):
        raise ValueError(f"edges must join two different nodes in 0..{n - 1}")
    return u, v


def mean_affinity_agglomeration(n: int, u, v, sums, counts, threshold: float) -> np.ndarray:
    """Root (a node index) of each of the ``n`` nodes after merging while the lowest score < ``threshold``.

    Ties go to the edge listed first. Memory: a dict of neighbours per node, O(n + edges)."""
    u, v = _check(n, u, v, sums, counts)
    s, c = np.asarray(sums, np.float64).tolist(), np.asarray(counts, np.int64).tolist()
    score = edge_scores(s, c).tolist() if len(s) else []
    parent = list(range(n))
    adj: list[dict[int, int]] = [{} for _ in range(n)]
    for e, (a, b) in enumerate(zip(u.tolist(), v.tolist())):
        adj[a][b] = e
        adj[b][a] = e
    ends = list(zip(u.tolist(), v.tolist()))
    heap = [(sc, e) for e, sc in enumerate(score) if sc < threshold]
    heapq.heapify(heap)
    alive = [True] * len(score)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    while heap:
        sc, e = heapq.heappop(heap)
        if not alive[e] or score[e] != sc:
            continue  # merged away, or re-scored since this entry was pushed
        a, b = find(ends[e][0]), find(ends[e][1])
        if len(adj[a]) < len(adj[b]):
            a, b = b, a  # keep the region with more neighbours; move the other's edges
        alive[e] = False
        parent[b] = a
        del adj[a][b]
        for nb, eb in adj[b].items():
            if nb == a:
                continue
            del adj[nb][b]
            ea = adj[a].get(nb)
            if ea is None:  # a neighbour of b only: the edge now joins a and nb, its score is unchanged
                adj[a][nb] = eb
                adj[nb][a] = eb
                continue
            s[ea] += s[eb]  # a shared neighbour: one edge with both sets of affinities
            c[ea] += c[eb]
            alive[eb] = False
            score[ea] = 1.0 - s[ea] / c[ea]
            if score[ea] < threshold:
                heapq.heappush(heap, (score[ea], ea))
        adj[b] = {}
    return np.array([find(x) for x in range(n)], np.int64)


def threshold_components(n: int, u, v, scores, threshold: float) -> np.ndarray:
    """Component label (0..k-1) of each node over the edges with ``score < threshold`` (union-find by scipy)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    u, v = _check(n, u, v, scores)
    keep = np.asarray(scores) < threshold
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (u[keep], v[keep])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def join_pieces(n: int, a, b) -> np.ndarray:
    """Fragment index (0..k-1, in order of first piece) of each of ``n`` pieces, pieces ``a[i]`` and ``b[i]``
    being parts of one fragment (union-find by scipy's connected components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    comp = connected_components(graph, directed=False)[1]
    _, first, inverse = np.unique(comp, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def consecutive_labels(roots: np.ndarray) -> np.ndarray:
    """Segment ids 1..k for a node -> component array, numbered in order of each component's first node, so the
    result depends on the partition only (not on which node ended up as root)."""
    roots = np.asarray(roots, np.int64)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    return rank[inverse].astype(np.uint64)
