"""Runs the robustness-evaluation queue worker, as `python -m cohort.evaluation.worker` would."""

import runpy


def main() -> None:
    runpy.run_module("cohort.evaluation.worker", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
