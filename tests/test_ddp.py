"""train() under DistributedDataParallel: two gloo processes on the CPU reach the same parameters
and validation estimates as one process that sees the same global batch."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lm_steps.gpt import GPT, GPTConfig
from lm_steps.config import TrainConfig
from lm_steps.runs import train

MODEL = GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16)
CFG = TrainConfig(max_iters=4, batch_size=4, grad_accum=2, lr=1e-2, warmup_iters=1, eval_interval=2,
                  eval_iters=1, dtype="float32", seed=3)


def _data():
    stream = torch.randint(16, (400,), generator=torch.Generator().manual_seed(0))
    return stream[:300], stream[300:]


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        model = GPT(MODEL, generator=torch.Generator().manual_seed(0))
        hist = train(model, _data(), CFG, checkpoint_path=os.path.join(folder, "ddp.pt"))
        if rank == 0:
            torch.save({"params": model.state_dict(), "val_loss": hist["val_loss"]}, os.path.join(folder, "rank0.pt"))
        else:
            assert hist["val_loss"] == []  # only rank 0 evaluates
        dist.barrier()  # leave together: a rank that ends the group while the other still talks can abort it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    mp.start_processes(_worker, args=(2, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ddp = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert len(ddp["val_loss"]) == 3 and (tmp_path / "ddp.pt").exists()
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = GPT(MODEL, generator=torch.Generator().manual_seed(0))
        from dataclasses import replace
        hist = train(single, _data(), replace(CFG, batch_size=2 * CFG.batch_size))  # the same global batch
    finally:
        torch.set_num_threads(n)
    start = GPT(MODEL, generator=torch.Generator().manual_seed(0)).state_dict()
    for name, p in single.state_dict().items():
        assert not torch.equal(p, start[name]) or p.dim() < 2  # training moved the weights
        torch.testing.assert_close(ddp["params"][name], p, atol=1e-6, rtol=1e-5)
    # rank 0 evaluates on whole global batches: the same estimates as the single process
    torch.testing.assert_close(torch.tensor(ddp["val_loss"]), torch.tensor(hist["val_loss"]), atol=1e-6, rtol=1e-5)
