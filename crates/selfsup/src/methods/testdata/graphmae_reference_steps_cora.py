"""Writes the Cora fixture of `methods/graphmae_reference_test.rs`: 30 training steps of the
GraphMAE authors' GAT model on Cora, from initial weights and a mask saved beside the losses.

Run from the root of a checkout of THUDM/GraphMAE, branch `pyg` (commit 9127f25 was used), with
torch, torch_geometric and safetensors installed, and the Planetoid files `ind.cora.*` in
`cora/raw/` (as its `Planetoid("", "cora")` expects):

    python <this folder>/graphmae_reference_steps_cora.py OUT_DIR

Setting: Cora's `configs.yml` (2 GAT layers, PReLU, mask rate 0.5, replace rate 0.05, SCE alpha 3,
Adam lr 1e-3 with weight decay 2e-4, row-normalised features, self-loops) with two changes so that
the fixture stays small and deterministic: 2 heads of 16 units (num_hidden 32) instead of 4 of 128,
and feature and attention dropout 0. The mask is drawn once, as the reference draws it, and reused
at every step. Weights are renamed to selfsup's variable names; linear maps are stored as
`[in, out]` (selfsup applies them as h W).
"""
import os
import sys

import torch

from graphmae_reference_common import fix_mask, run_and_save

sys.path.insert(0, os.getcwd())  # the GraphMAE checkout
out_dir = sys.argv[1]
sys.argv = [sys.argv[0], "--dataset", "cora", "--use_cfg"]
from graphmae.datasets.data_util import load_dataset  # noqa: E402
from graphmae.models import build_model  # noqa: E402
from graphmae.utils import build_args, load_best_configs, set_random_seed  # noqa: E402

torch.set_num_threads(1)
args = load_best_configs(build_args(), "configs.yml")
graph, (num_features, _) = load_dataset("cora")
args.num_features = num_features
args.num_hidden, args.num_heads = 32, 2
args.in_drop, args.attn_drop = 0.0, 0.0
set_random_seed(0)
model = build_model(args)
x, edge_index = graph.x, graph.edge_index

mask = fix_mask(model, x.shape[0], args.mask_rate, args.replace_rate)

sd = model.state_dict()
ours = {}


def gat_layer(dst, src, activation):
    heads, out = sd[f"{src}.att_src"].shape[1:]
    ours[f"{dst}.fc"] = sd[f"{src}.lin_src.weight"].t()
    ours[f"{dst}.attn_l"] = sd[f"{src}.att_src"].reshape(heads, out)
    ours[f"{dst}.attn_r"] = sd[f"{src}.att_dst"].reshape(heads, out)
    ours[f"{dst}.bias"] = sd[f"{src}.bias"]
    if activation:
        ours[f"{dst}.prelu"] = sd[f"{src}.activation.weight"]


for i in range(args.num_layers):
    gat_layer(f"encoder.layer{i}", f"encoder.gat_layers.{i}", True)
gat_layer("decoder.layer0", "decoder.gat_layers.0", False)
ours["encoder_to_decoder"] = sd["encoder_to_decoder.weight"].t()
ours["mask_token"] = sd["enc_mask_token"]
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
run_and_save(model, x, edge_index, optimizer, ours, mask, out_dir, "graphmae_cora",
             {"hidden_per_head": args.num_hidden // args.num_heads, "heads": args.num_heads,
              "lr": args.lr, "weight_decay": args.weight_decay})
