"""``python -m trl_sft_kit.distributed RECIPE [--set KEY=VALUE ...]``: one launched training process."""

from trl_sft_kit.distributed.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
