"""The experiment harness: a run's spec and seed plan, the runner with its phases
(distill, fine-tune), checkpoints and exact resume, outputs, hyperparameter files, and the
tools that prepare teachers."""
