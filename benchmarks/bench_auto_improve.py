"""Auto-improve ranking: 10,000 candidates ranked warm (target <= 2 s), and `oxi --help`
with and without the auto-improve commands (target: no difference beyond noise).

    .venv/bin/python benchmarks/bench_auto_improve.py [--candidates 10000] [--keep DIR]
                                                      [--runs 20] [--part rank|startup|all]

Ranking: synthetic candidates (deterministic, words of this repository's roadmap mixed with
other words) against the corpus of this repository (roadmap.md, CHANGELOG.md if any). The
first pass embeds every text with the real model (cold; minutes under load, so --keep DIR
keeps the embedding cache for the next run); then warm passes read the cache. Baselines in
the same run: the exact vector scoring that the quantized shortlist replaced, and how many of
the exact top 15 the shortlisted ranking kept.

Startup: `oxi --help` from this tree, and from a copy of it whose cli.py does not register the
auto-improve commands (the "before"), interleaved run by run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OTHER_WORDS = ["market", "weather", "recipe", "football", "travel", "garden", "music",
               "camera", "museum", "festival", "holiday", "fashion", "finance", "election",
               "climate", "soccer", "movie", "concert", "bakery"]


def synthetic(count: int) -> list[object]:
    from oxi_core.models import Candidate

    words = (ROOT / "roadmap.md").read_text().split()
    rng = random.Random(13)
    found = []
    for i in range(count):
        pool = words if i % 3 else OTHER_WORDS
        found.append(Candidate("bench", f"c{i}", " ".join(rng.choices(pool, k=8)),
                               " ".join(rng.choices(words + OTHER_WORDS, k=30))))
    return found


def bench_rank(count: int, keep: Path | None, runs: int) -> None:
    from oxi_core.auto_improve import ranking
    from oxi_core.auto_improve.corpus import changelog_docs, roadmap_docs
    from oxi_core.auto_improve.embeddings import EmbeddingCache, FastEmbedder, model_folder
    from oxi_core.roadmap import load_roadmap

    folder = keep or Path(tempfile.mkdtemp(prefix="oxi-bench-ai-"))
    folder.mkdir(parents=True, exist_ok=True)
    cache = EmbeddingCache(folder / "embeddings.db")
    embedder = FastEmbedder(model_folder(folder))

    def embed(texts: list[str]) -> list[bytes]:
        return cache.vectors(texts, embedder)

    corpus = roadmap_docs(load_roadmap(ROOT / "roadmap.md")) + changelog_docs(ROOT)
    candidates = synthetic(count)
    print(f"{count} candidates, {len(corpus)} corpus documents, cache {folder}")
    start = time.perf_counter()
    first = ranking.rank(candidates, corpus, embed, 15)
    print(f"  first pass (embeds what the cache lacks): {time.perf_counter() - start:8.2f} s")

    warm = []
    for _ in range(runs):
        start = time.perf_counter()
        again = ranking.rank(candidates, corpus, embed, 15)
        warm.append(time.perf_counter() - start)
        assert [r.candidate.key for r in again] == [r.candidate.key for r in first]
    median = statistics.median(warm)
    verdict = "met" if median <= 2.0 else "MISSED"
    print(f"  warm rank(), median of {runs}:             {median:8.2f} s  (min {min(warm):.2f})"
          f"  target <= 2 s: {verdict}")

    # Baselines: the parts, and exact scoring of every candidate (no quantized shortlist).
    texts = [c.text[:ranking.MAX_TEXT] for c in candidates]
    vectors = embed([d.text[:ranking.MAX_TEXT] for d in corpus] + texts)
    doc_vectors, cand_vectors = vectors[:len(corpus)], vectors[len(corpus):]
    timings = {}
    for name, call in (
        ("cache read of every vector", lambda: embed([d.text[:ranking.MAX_TEXT]
                                                      for d in corpus] + texts)),
        ("BM25 (FTS5, one query)", lambda: ranking.bm25_scores(corpus, candidates)),
        ("vectors, quantized shortlist + exact", lambda: ranking.vector_scores(
            doc_vectors, cand_vectors, shortlist=ranking.VECTOR_SHORTLIST)),
        ("vectors, exact for all (baseline)", lambda: ranking.vector_scores(
            doc_vectors, cand_vectors, shortlist=len(cand_vectors))),
    ):
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        timings[name] = statistics.median(samples)
        print(f"  {name:<40} {timings[name]:8.3f} s")
    exact = ranking.vector_scores(doc_vectors, cand_vectors, shortlist=len(cand_vectors))
    best = sorted(exact, key=lambda i: -exact[i])
    for size in (300, ranking.VECTOR_SHORTLIST):
        short = ranking.vector_scores(doc_vectors, cand_vectors, shortlist=size)
        print(f"  exact vector top 15 / top 100 inside a quantized shortlist of {size}: "
              f"{sum(i in short for i in best[:15])}/15, {sum(i in short for i in best[:100])}"
              "/100")
    # The same with a corpus six times larger (a repository with many merged PRs).
    big = list(doc_vectors) * 6
    for name, size in (("exact for all", len(cand_vectors)),
                       ("quantized shortlist", ranking.VECTOR_SHORTLIST)):
        start = time.perf_counter()
        ranking.vector_scores(big, cand_vectors, shortlist=size)
        print(f"  vectors against {len(big)} documents, {name:<20} "
              f"{time.perf_counter() - start:8.3f} s")
    cache.close()
    if keep is None:
        shutil.rmtree(folder, ignore_errors=True)


def bench_startup(runs: int) -> None:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        shutil.copytree(ROOT / "oxi_core", before / "oxi_core",
                        ignore=shutil.ignore_patterns("__pycache__"))
        cli = before / "oxi_core" / "cli.py"
        text = cli.read_text()
        lines = [line for line in text.splitlines(keepends=True) if "auto_improve" not in line]
        assert len(lines) == len(text.splitlines()) - 2, "update this benchmark: cli.py changed"
        cli.write_text("".join(lines))
        code = "import sys; from oxi_core.cli import main; main(['--help'])"
        env_base = {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        commands = {
            "oxi --help (after: with auto-improve)": (str(ROOT), env_base),
            "oxi --help (before: without it)": (str(before), env_base),
        }
        import os

        samples: dict[str, list[float]] = {name: [] for name in commands}
        for warmup in (True, *([False] * runs)):
            for name, (path, extra) in commands.items():
                env = {**os.environ, **extra, "PYTHONPATH": path}
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                start = time.perf_counter()
                subprocess.run([python, "-c", code], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if not warmup:
                    samples[name].append((time.perf_counter() - start) * 1000)
        print(f"startup, {runs} runs each, interleaved (ms)      median   min")
        for name, values in samples.items():
            print(f"  {name:<42} {statistics.median(values):6.1f} {min(values):6.1f}")
        # What the commands import on --help: nothing heavy.
        probe = ("import sys; from oxi_core.cli import main\n"
                 "try:\n    main(['auto-improve', '--help'])\nexcept SystemExit: pass\n"
                 "heavy = sorted(m for m in ('fastembed', 'numpy', 'sqlite_vec', 'onnxruntime', "
                 "'tokenizers') if m in sys.modules)\nprint('heavy modules:', heavy or 'none', "
                 "file=sys.stderr)")
        result = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        print(f"  `oxi auto-improve --help` {result.stderr.strip().splitlines()[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--part", choices=("rank", "startup", "all"), default="all")
    args = parser.parse_args()
    if args.part in ("rank", "all"):
        bench_rank(args.candidates, args.keep, args.runs)
    if args.part in ("startup", "all"):
        bench_startup(max(args.runs, 20))


if __name__ == "__main__":
    main()
