"""medtune's training, export, serving and evaluation stages (`medtune` is `finetune.cli:main`)."""

from finetune import offline

offline.install()
