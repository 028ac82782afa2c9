# Where the time of one PGD-10 adversarial-training step goes on the GPU machine: the peer's own
# step (bf16 autocast + channels-last) under torch.profiler, GPU kernel time per step against wall
# time per step, and the kernels that take most of it. Kernel time is what a step costs once the
# gaps between kernels are gone (what one CUDA graph per step can reach with the same cuDNN and
# cuBLAS kernels), so advft's graphed images/s against `kernel-bound img/s` says how much of a
# miss is gaps and how much is the kernels themselves.
#
#   python3 scripts/peer_kernel_time.py peer/peer_bench_defs.py
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

scope = {"__name__": "peer_bench_defs"}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), scope)
step = scope["step"]


def device_us(event):
    # torch 2.4 renamed the CUDA-only attribute to the device-neutral one.
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)


for name, make, batch, steps in (("preact18", scope["preact18"], 128, 6),
                                 ("preact18", scope["preact18"], 512, 4),
                                 ("wrn34-10", scope["wrn34_10"], 128, 3)):
    torch.manual_seed(0)
    model = make().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")
    args = (8 / 255, 2 / 255, 10, True, torch.bfloat16)
    for _ in range(3):
        step(model, opt, x, y, *args)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step(model, opt, x, y, *args)
        torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1000 / steps
    kernels = [(device_us(e), e.key) for e in prof.key_averages() if device_us(e) > 0]
    kernel_ms = sum(us for us, _ in kernels) / 1000 / steps
    print(f"{name} bs={batch}: wall {wall_ms:.1f} ms/step (under the profiler), GPU kernels "
          f"{kernel_ms:.1f} ms/step = {100 * kernel_ms / wall_ms:.0f}% busy; kernel-bound "
          f"{batch * 1000 / kernel_ms:.0f} img/s", flush=True)
    for us, key in sorted(kernels, reverse=True)[:6]:
        print(f"    {100 * us / 1000 / steps / kernel_ms:5.1f}%  {key[:110]}")
