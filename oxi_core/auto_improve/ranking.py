"""Ranking without a model call: prefilter, BM25 (SQLite FTS5) against the corpus of what the
repository is about, vector similarity (sqlite-vec) against the same corpus, and reciprocal
rank fusion (k = 60). Ties break on the candidate's key, so a ranking is deterministic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from oxi_core.auto_improve.corpus import CorpusDoc
from oxi_core.auto_improve.vectors import connect
from oxi_core.models import Candidate

RRF_K = 60
PROFILE_TERMS = 64
TOKENIZE = "porter unicode61"
VECTOR_SHORTLIST = 1000
MAX_TEXT = 2000  # characters of a candidate that ranking reads
_STOPWORDS = (
    "a an and are as at be but by can for from has have how in into is it its new not of on "
    "or our so that the their them then there these this to was we what when which will with "
    "you your")
STOPWORDS = frozenset(_STOPWORDS.split(" "))

Embed = Callable[[Sequence[str]], list[bytes]]


@attrs.frozen
class Ranked:
    candidate: Candidate
    rank: int  # 1-based, after fusion
    rrf: float
    bm25_rank: int | None
    vector_rank: int | None
    bm25: float  # higher is better; 0.0 when no corpus word matched
    similarity: float  # best cosine similarity to a corpus document


def prefilter(candidates: Iterable[Candidate], *, seen: Iterable[str] = (),
              max_per_source: int = 200) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """Candidates worth ranking, and the others with why: no title, already seen (by key),
    fetched twice in one scan, or over the per-source cap (newest kept)."""
    seen_keys = set(seen)
    kept: list[Candidate] = []
    dropped: list[tuple[Candidate, str]] = []
    batch: set[str] = set()
    for candidate in candidates:
        if not candidate.title.strip():
            dropped.append((candidate, "no title"))
        elif candidate.key in seen_keys:
            dropped.append((candidate, "already seen"))
        elif candidate.key in batch:
            dropped.append((candidate, "fetched twice"))
        else:
            batch.add(candidate.key)
            kept.append(candidate)
    by_source: dict[str, list[Candidate]] = {}
    for candidate in kept:
        by_source.setdefault(candidate.source, []).append(candidate)
    over: set[str] = set()
    for group in by_source.values():
        newest = sorted(group, key=lambda c: (-(c.published_at.timestamp()
                                                if c.published_at else 0.0), c.key))
        over |= {c.key for c in newest[max_per_source:]}
    dropped += [(c, "over the per-source cap") for c in kept if c.key in over]
    return [c for c in kept if c.key not in over], dropped


def profile_terms(conn: Any, limit: int = PROFILE_TERMS) -> list[str]:
    """The words the corpus (the FTS5 table ``corpus``) is about: the terms found in the most
    of its documents (at least two, when it has five or more), no stopwords or numbers."""
    conn.execute("CREATE VIRTUAL TABLE corpus_vocab USING fts5vocab(corpus, 'row')")
    documents = conn.execute("SELECT count(*) FROM corpus").fetchone()[0]
    least = 2 if documents >= 5 else 1
    rows = conn.execute("SELECT term, doc FROM corpus_vocab WHERE doc >= ? "
                        "ORDER BY doc DESC, cnt DESC, term", (least,)).fetchall()
    terms = [term for term, _doc in rows
             if len(term) >= 3 and not term.isdigit() and term not in STOPWORDS]
    return terms[:limit]


def bm25_scores(corpus: Sequence[CorpusDoc], candidates: Sequence[Candidate]) -> list[float]:
    """Each candidate's BM25 score (higher is better, 0.0: no match) for the query made of the
    corpus's profile terms: one FTS5 query over all candidates, however many there are."""
    from oxi_core.ledger import driver

    conn = driver.sqlite_module().connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE corpus USING fts5(text, tokenize = '{TOKENIZE}')")
        conn.executemany("INSERT INTO corpus (text) VALUES (?)", [(d.text,) for d in corpus])
        terms = profile_terms(conn)
        if not terms:
            return [0.0] * len(candidates)
        conn.execute(f"CREATE VIRTUAL TABLE found USING fts5(text, tokenize = '{TOKENIZE}')")
        conn.executemany("INSERT INTO found (rowid, text) VALUES (?, ?)",
                         [(i, c.text[:MAX_TEXT]) for i, c in enumerate(candidates)])
        query = " OR ".join(f'"{term}"' for term in terms)
        scores = [0.0] * len(candidates)
        for rowid, score in conn.execute(
                "SELECT rowid, bm25(found) FROM found WHERE found MATCH ?", (query,)):
            scores[int(rowid)] = -float(score)
        return scores
    finally:
        conn.close()


def vector_scores(corpus_vectors: Sequence[bytes], candidate_vectors: Sequence[bytes], *,
                  shortlist: int) -> dict[int, float]:
    """The best cosine similarity to a corpus document of the ``shortlist`` most similar
    candidates (by index). Past that many candidates, the shortlist is chosen on binary
    quantized vectors (Hamming distance) and only it is scored exactly: sqlite-vec's
    quantize-then-rerank. On 10,000 real candidates a shortlist of 1,000 kept all of the exact
    top 15 and 94 of the top 100, in 40% of the time of exact scoring against 210 documents
    (benchmarks/README.md)."""
    if not corpus_vectors or not candidate_vectors:
        return {}
    conn = connect()
    try:
        conn.execute("CREATE TABLE docs (v BLOB, b BLOB)")
        conn.execute("CREATE TABLE found (id INTEGER PRIMARY KEY, v BLOB, b BLOB)")
        conn.executemany("INSERT INTO docs VALUES (?, vec_quantize_binary(?))",
                         [(v, v) for v in corpus_vectors])
        conn.executemany("INSERT INTO found VALUES (?, ?, vec_quantize_binary(?))",
                         [(i, v, v) for i, v in enumerate(candidate_vectors)])
        where, params = "", ()  # type: tuple[str, tuple[str, ...]]
        if len(candidate_vectors) > shortlist:
            ids = [row[0] for row in conn.execute(
                "SELECT found.id, min(vec_distance_hamming(vec_bit(found.b), vec_bit(docs.b))) "
                "AS far FROM found, docs GROUP BY found.id ORDER BY far, found.id LIMIT ?",
                (shortlist,))]
            where, params = "WHERE found.id IN (SELECT value FROM json_each(?))", (
                json.dumps(ids),)
        rows = conn.execute(
            "SELECT found.id, min(vec_distance_cosine(found.v, docs.v)) FROM found, docs "  # noqa: S608
            f"{where} GROUP BY found.id", params).fetchall()
        return {int(i): 1.0 - float(distance) for i, distance in rows}
    finally:
        conn.close()


def rrf_combine(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list ranks item indexes best first; an item scores the sum
    of 1 / (k + rank) over the lists it appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for position, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + position)
    return fused


def _order(scores: Sequence[float], keys: Sequence[str], *, keep: Callable[[float], bool]
           ) -> list[int]:
    return sorted((i for i, score in enumerate(scores) if keep(score)),
                  key=lambda i: (-scores[i], keys[i]))


def rank(candidates: Sequence[Candidate], corpus: Sequence[CorpusDoc], embed: Embed,
         top_k: int) -> list[Ranked]:
    """The ``top_k`` best candidates, best first (``Ranked.rank`` 1..top_k): the fusion of the
    BM25 ranking and the vector ranking (its first ``max(1000, 50 * top_k)``)."""
    if not candidates:
        return []
    keys = [c.key for c in candidates]
    bm25 = bm25_scores(corpus, candidates)
    texts = [c.text[:MAX_TEXT] for c in candidates]
    vectors = embed([d.text[:MAX_TEXT] for d in corpus] + texts)
    scored = vector_scores(vectors[:len(corpus)], vectors[len(corpus):],
                           shortlist=max(VECTOR_SHORTLIST, 50 * top_k))
    similarity = [scored.get(i, -1.0) for i in range(len(candidates))]
    by_bm25 = _order(bm25, keys, keep=lambda score: score > 0.0)
    by_vector = sorted(scored, key=lambda i: (-scored[i], keys[i]))
    fused = rrf_combine([by_bm25, by_vector])
    bm25_rank = {index: position for position, index in enumerate(by_bm25, start=1)}
    vector_rank = {index: position for position, index in enumerate(by_vector, start=1)}
    # Candidates neither list holds (an empty corpus, past the vector shortlist) come last.
    best = sorted(range(len(candidates)), key=lambda i: (-fused.get(i, 0.0), keys[i]))[:top_k]
    return [Ranked(candidates[i], position, fused.get(i, 0.0), bm25_rank.get(i),
                   vector_rank.get(i),
                   bm25[i], similarity[i])
            for position, i in enumerate(best, start=1)]
