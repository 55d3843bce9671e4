"""Moving a region of 64K folios against moving one of 4K pages.

arm64-4k under linux-6.17 (contiguous PTEs, mremap_folio_pte_batch), a
written region moved back and forth with mremap(MAYMOVE|FIXED): on the PTE
path (destination 4 KiB past a PMD boundary, so every PMD extent cuts a
folio and its block is unfolded) and on the PMD path (aligned: whole PTE
tables move, folios or not). The two populations are measured in the same
run, interleaved, medians of ``--repeats`` moves each; the target is the
64K-folio move within 2x of the 4K-page one.

Usage: python bench/folio_speed.py [--gib 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics

from pagetab.native import PingPong

K = 1 << 10


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--gib", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    size = args.gib << 30
    print(f"arm64-4k, linux-6.17, {args.gib} GiB written, median of {args.repeats} moves")
    print(f"{'path':5} {'4K pages ms':>12} {'64K folios ms':>14} {'ratio':>7}  target <= 2x")
    for path, off in (("pte", 4096), ("pmd", 2 << 20)):
        small = PingPong(size, off, "linux-6.17", "arm64-4k", write=True)
        large = PingPong(size, off, "linux-6.17", "arm64-4k", write=True,
                         thp_sizes={64 * K: "always"})  # fmt: skip
        a, b = [], []
        for _ in range(args.repeats):  # interleaved: both see the same machine
            a += small.times(1)
            b += large.times(1)
        st = large.mm.last_move
        assert st is not None
        ma, mb = statistics.median(a) / 1e6, statistics.median(b) / 1e6
        print(
            f"{path:5} {ma:>12.1f} {mb:>14.1f} {mb / ma:>6.2f}x  "
            f"{'ok' if mb <= 2 * ma else 'MISSED'}  (64K: {st.pte_batches} batches, "
            f"{st.contpte_unfolds} unfolds, {st.contpte_folds} folds per move)"
        )
        del small, large


if __name__ == "__main__":
    main()
