"""`python -m finetune …` (and `accelerate launch -m finetune train …`) is the `medtune` command."""

import sys

from finetune.cli import main

sys.exit(main())
