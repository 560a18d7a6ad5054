"""wharf's autoscaler against marathon-lb-autoscale and the perfect-foresight floor, over every
generated trace family (ramps, spikes, diurnal days, noise, flash crowds; `autoscale/families.py`)
and the three bundled 4-hour traces.

The model is the replay the autoscaler is judged by: one decision per 60 s of trace, target 100 rps per instance, a
second is overloaded when rps per serving instance is above 120, new instances serve one tick after
they are asked for. wharf runs its default policy (what `--target-rps 100` gives); "mlb" is
marathon-lb-autoscale's rule as `autoscale/mlb.py` re-implements it, with its defaults (samples 10,
cooldown 5, threshold 50 % / 3 instances, 3 intervals past the threshold), replayed in this run on
the same traces and instance model (the Ruby tool itself is not run). The floor is the fewest
instance-seconds of any schedule that is never overloaded, changes the count only at decisions and
knows the load in advance. A replay is deterministic: the traces are seeded and nothing is timed.

    python bench/autoscale.py [--seeds N] [--plot-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscale.policy import Policy  # noqa: E402
from autoscale.score import overload_limit, plot_each, score, table, traces  # noqa: E402
from autoscale.simulate import Model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="traces generated per family member [3]")
    parser.add_argument("--plot-dir", type=Path, default=None, help="write one SVG per trace here")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds: must be >= 1")
    policy = Policy(target_rps=100)
    model = Model(interval=60, startup=60, overload_factor=1.2)
    print(f"wharf policy: {policy}")
    print(f"model: a decision every {model.interval:g}s, instances serving {model.startup:g}s after they are "
          f"asked for, overloaded above {overload_limit(policy, model):g} rps per instance; seeds 0-{args.seeds - 1}")
    named = traces(range(args.seeds))
    scores = [score(name, shape, load, policy, model) for name, shape, load in named]
    if args.plot_dir is not None:
        args.plot_dir.mkdir(parents=True, exist_ok=True)
        plot_each(args.plot_dir, named, scores, policy, model)
    for line in table(scores):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
