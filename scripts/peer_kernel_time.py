# Where the time of one PGD-10 adversarial-training step goes on the GPU machine: the peer's own
# step (bf16 autocast + channels-last) under torch.profiler, GPU kernel time per step against wall
# time per step, and the kernels that take most of it. Kernel time is what a step costs once the
# gaps between kernels are gone (what one CUDA graph per step can reach with the same cuDNN and
# cuBLAS kernels), so advft's graphed images/s against `kernel-bound img/s` says how much of a
# miss is gaps and how much is the kernels themselves. The last configuration is fmnist_peer.py's
# step (one input channel, 28x28, eps 0.1), whose graphed rate in advft was below the CIFAR one
# although its images are smaller.
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


def fmnist_preact18():
    # fmnist_peer.py's model: PreActResNet-18 with a one-channel stem, on 1x28x28 images.
    model = scope["preact18"]()
    model.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    return model


# name, model, batch, profiled steps, input (channels, size), attack (eps, step size), kernels
# listed; the Fashion-MNIST step lists more: its one-channel stem is an odd shape for cuDNN.
for name, make, batch, steps, (channels, size), (eps, alpha), top in (
        ("preact18", scope["preact18"], 128, 6, (3, 32), (8 / 255, 2 / 255), 6),
        ("preact18", scope["preact18"], 512, 4, (3, 32), (8 / 255, 2 / 255), 6),
        ("wrn34-10", scope["wrn34_10"], 128, 3, (3, 32), (8 / 255, 2 / 255), 6),
        ("fmnist-preact18", fmnist_preact18, 128, 6, (1, 28), (0.1, 0.025), 12)):
    torch.manual_seed(0)
    model = make().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, channels, size, size, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device="cuda")
    args = (eps, alpha, 10, True, torch.bfloat16)
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
    for us, key in sorted(kernels, reverse=True)[:top]:
        print(f"    {100 * us / 1000 / steps / kernel_ms:5.1f}%  {key[:110]}")
