"""Writes the fixture of `methods/graphmae_reference_test.rs`: 30 training steps of the
GraphMAE authors' model on the first 64 MUTAG graphs, from initial weights and a mask that are
saved beside the losses, so that selfsup's GraphMAE can replay the same steps and compare.

Run from the root of a checkout of THUDM/GraphMAE, branch `pyg` (commit 9127f25 was used), with
torch, torch_geometric and safetensors installed:

    python <this folder>/graphmae_reference_steps_mutag.py OUT_DIR

Setting: MUTAG's `configs.yml` (GIN 5 x 32, batch norm, PReLU, mask rate 0.75, replace rate 0.1,
SCE alpha 2, Adam lr 5e-4) with feature dropout 0 (dropout draws cannot be shared between the two
implementations). The mask is drawn once, as the reference draws it, and reused at every step.
Weights are renamed to selfsup's variable names; the encoder-to-decoder matrix is stored
transposed (selfsup applies it as h W).
"""
import os
import sys

import torch
from torch_geometric.loader import DataLoader

from graphmae_reference_common import fix_mask, run_and_save

sys.path.insert(0, os.getcwd())  # the GraphMAE checkout
out_dir = sys.argv[1]
sys.argv = [sys.argv[0], "--dataset", "MUTAG", "--use_cfg"]
from graphmae.datasets.data_util import load_graph_classification_dataset  # noqa: E402
from graphmae.models import build_model  # noqa: E402
from graphmae.utils import build_args, load_best_configs, set_random_seed  # noqa: E402

torch.set_num_threads(1)
args = load_best_configs(build_args(), "configs.yml")
graphs, (num_features, _) = load_graph_classification_dataset("MUTAG")
args.num_features = num_features
args.in_drop = 0.0
set_random_seed(0)
model = build_model(args)
batch = next(iter(DataLoader(graphs, batch_size=64, shuffle=False)))
x, edge_index = batch.x, batch.edge_index

mask = fix_mask(model, x.shape[0], args.mask_rate, args.replace_rate)

sd = model.state_dict()
ours = {}


def norm(dst, src):
    for s in ["weight", "bias", "running_mean", "running_var"]:
        ours[f"{dst}.{s}"] = sd[f"{src}.{s}"]


def mlp(dst, src):
    ours[f"{dst}.lin1.weight"] = sd[f"{src}.linears.0.weight"]
    ours[f"{dst}.lin1.bias"] = sd[f"{src}.linears.0.bias"]
    ours[f"{dst}.lin2.weight"] = sd[f"{src}.linears.1.weight"]
    ours[f"{dst}.lin2.bias"] = sd[f"{src}.linears.1.bias"]
    norm(f"{dst}.norm1", f"{src}.norms.0")
    ours[f"{dst}.act1.prelu"] = sd[f"{src}.activations.0.weight"]


for i in range(args.num_layers):
    src, dst = f"encoder.layers.{i}.nn", f"encoder.layer{i}"
    mlp(dst, f"{src}.mlp")
    norm(f"{dst}.norm2", f"{src}.norm")
    ours[f"{dst}.act2.prelu"] = sd[f"{src}.act.weight"]
mlp("decoder.layer0", "decoder.layers.0.nn")
ours["encoder_to_decoder"] = sd["encoder_to_decoder.weight"].t()
ours["mask_token"] = sd["enc_mask_token"]
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
run_and_save(model, x, edge_index, optimizer, ours, mask, out_dir, "graphmae_mutag",
             {"graphs": 64, "lr": args.lr})
