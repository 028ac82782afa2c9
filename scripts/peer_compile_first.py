# The torch.compile peer (../shared/peer/peer_compile.py) in the order the targets need it: its
# own `run` for PreActResNet-18 at batch 128 under mode="reduce-overhead" first (the best Python
# figure of the batch-128 target), then mode="default", then with `all` the other configurations.
# Each result is printed as soon as it is measured, so a stage cut short by its time budget keeps
# what it had; the peer's whole script compiles nine configurations before and among those two.
#
#   python3 scripts/peer_compile_first.py peer/peer_compile.py [all]
import sys

path = sys.argv[1]
source = open(path).read()
cut = source.index("for bs in (128,512): run(")  # the peer's own sweep starts here
scope = {"__file__": path, "__name__": "peer_compile"}
exec(compile(source[:cut], path, "exec"), scope)
run, pb = scope["run"], scope["pb"]

order = [("preact18", pb.preact18, 128, "reduce-overhead", 20),
         ("preact18", pb.preact18, 128, "default", 20)]
if "all" in sys.argv[2:]:
    order += [("preact18", pb.preact18, 512, "reduce-overhead", 20),
              ("wrn34-10", pb.wrn34_10, 128, "reduce-overhead", 8),
              ("preact18", pb.preact18, 512, "default", 20),
              ("wrn34-10", pb.wrn34_10, 128, "default", 8)]
for name, make, batch, mode, iters in order:
    run(name, make, batch, mode, iters=iters)
