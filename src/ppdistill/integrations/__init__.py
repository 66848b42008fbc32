"""ppdistill inside other tools (the RL Baselines3 Zoo)."""
