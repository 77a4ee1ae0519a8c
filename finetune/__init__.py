"""medtune's training, export, serving and evaluation stages (`medtune` is `finetune.cli._commands:main`)."""

from finetune import offline

offline.install()
