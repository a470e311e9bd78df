"""``python -m trl_sft_kit`` runs the ``trl-sft-kit`` command."""

from trl_sft_kit.cli import main

raise SystemExit(main())
