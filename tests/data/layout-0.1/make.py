"""Files in ppdistill 0.1's layout (flat modules), kept to prove later layouts still read them."""
import shutil, json
from pathlib import Path
import torch as th
th.set_num_threads(1)
from ppdistill import PPD, StudentDistill, load_teacher
from ppdistill.schedules import Linear
from ppdistill.runs import RunSpec, run
from ppdistill.config import hyperparameters

zoo = Path("/work/shared/teachers/rl-zoo")
out = Path("/tmp/legacy/out"); shutil.rmtree(out, ignore_errors=True); out.mkdir()
# 1. a PPD student with the teacher's normalization inside (NormalizedFlattenExtractor) and a λ schedule
teacher = load_teacher(zoo / "ppo/Hopper-v3_1")
m = PPD("MlpPolicy", "Hopper-v5", teacher=teacher, distill_lambda=Linear(2.0, 0.5), n_steps=64, batch_size=64,
        n_epochs=1, seed=0, policy_kwargs={"net_arch": [16, 16]})
m.learn(128)
m.save(out / "ppd-hopper-student.zip")
# 2. an unfinished run: a checkpoint taken after the first updates
class Stop(Exception): pass
def hook(model):
    train, calls = model.train, [0]
    def failing():
        calls[0] += 1
        if calls[0] > 3: raise Stop
        train()
    model.train = failing
hp = hyperparameters("CartPole-v1", "student-distill"); hp.update(n_envs=2, n_steps=32, batch_size=64)
spec = RunSpec(env_id="CartPole-v1", method="student-distill", teacher=str(zoo / "ppo/CartPole-v1_1"),
               timesteps=1024, student="16,16", seed=3, hp=hp, eval_episodes=2, final_episodes=3)
try:
    run(spec, out=out / "unfinished-run", checkpoint_freq=128, on_model=hook)
except Stop:
    pass
print(sorted(p.relative_to(out).as_posix() for p in out.rglob("*")))
# 3. the same run, uninterrupted: its final weights are what resuming (2) must give
result = run(spec, out=out / "finished-run", checkpoint_freq=128)
print("finished", result["score"], result["env_steps"])
