"""Print the 2018 findings: simulated ratio next to the published one."""

from pagetab.reproduce import reproduce_2018


def main() -> None:
    print(f"{'case':58} {'simulated':>10} {'published':>10} {'error':>8}  claim")
    for f in reproduce_2018():
        pub = "-" if f.published is None else f"{f.published:.0f}x"
        err = "-" if f.error is None else f"{f.error:+.0%}"
        print(f"{f.case:58} {f.simulated:>9.1f}x {pub:>10} {err:>8}  {f.claim} [{f.source}]")


if __name__ == "__main__":
    main()
