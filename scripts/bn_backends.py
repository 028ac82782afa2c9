# Is cuDNN's batch norm faster than PyTorch's own channels-last kernels for bf16? On the H200 the
# native BatchNorm kernels were 31-44% of a PreActResNet-18 PGD-AT step's kernel time (and
# PyTorch does not pick cuDNN for bf16). This times one training-mode forward + backward of every
# BatchNorm layer of PreActResNet-18 (batch 128 and 512) and WRN-34-10 (batch 128), bf16 NHWC
# input, fp32 weights and running statistics, through F.batch_norm (native) and
# torch.cudnn_batch_norm, checks that they agree, and prints the totals: whether a cuDNN path in
# advft's models is worth building.
#
#   python3 scripts/bn_backends.py
import torch
import torch.nn.functional as F

torch.backends.cudnn.benchmark = True

# (count, channels, height) of the BatchNorm layers, batch aside.
PREACT18 = [(4, 64, 32), (1, 64, 32), (3, 128, 16), (1, 128, 16), (3, 256, 8), (1, 256, 8),
            (3, 512, 4), (1, 512, 4)]
WRN34_10 = [(1, 16, 32), (9, 160, 32), (1, 160, 32), (9, 320, 16), (1, 320, 16), (9, 640, 8),
            (1, 640, 8)]


def layer(channels):
    weight = torch.rand(channels, device="cuda") + 0.5
    bias = torch.randn(channels, device="cuda")
    return weight, bias, torch.zeros(channels, device="cuda"), torch.ones(channels, device="cuda")


def native(x, weight, bias, mean, var):
    return F.batch_norm(x, mean, var, weight, bias, training=True, momentum=0.1, eps=1e-5)


def cudnn(x, weight, bias, mean, var):
    return torch.cudnn_batch_norm(x, weight, bias, mean, var, True, 0.1, 1e-5)[0]


def time_ms(fn, x, params, grad, repeats=30):
    for _ in range(3):
        fn(x, *params).backward(grad)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn(x, *params).backward(grad)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


for model, batch, layers in (("preact18", 128, PREACT18), ("preact18", 512, PREACT18),
                             ("wrn34-10", 128, WRN34_10)):
    totals = {"native": 0.0, "cudnn": 0.0}
    worst = 0.0
    for count, channels, height in layers:
        x = torch.randn(batch, channels, height, height, device="cuda", dtype=torch.bfloat16)
        x = x.to(memory_format=torch.channels_last).requires_grad_(True)
        grad = torch.randn_like(x)
        params = layer(channels)
        try:
            a = native(x, *layer(channels))
            b = cudnn(x, *layer(channels))
            worst = max(worst, (a.float() - b.float()).abs().max().item())
            for name, fn in (("native", native), ("cudnn", cudnn)):
                totals[name] += count * time_ms(fn, x, params, grad)
        except RuntimeError as e:
            print(f"{model} bs={batch} C={channels} H={height}: cudnn_batch_norm failed: "
                  f"{str(e).splitlines()[0]}")
            totals["cudnn"] = float("nan")
            break
    print(f"{model} bs={batch}: BatchNorm forward+backward per pass native {totals['native']:.3f} ms, "
          f"cuDNN {totals['cudnn']:.3f} ms (ratio {totals['cudnn'] / totals['native']:.2f}); "
          f"largest output difference {worst:.3g}", flush=True)
