"""What the two fixture scripts (`graphmae_reference_steps_{mutag,cora}.py`) share: a fixed mask
drawn as the reference draws it, the training steps, and the files the Rust test reads."""
import json
import os

import torch
from safetensors.torch import save_file

STEPS = 30


def fix_mask(model, n, mask_rate, replace_rate):
    """Draws one mask as the reference's `encoding_mask_noise` does, keeping the token and noise
    sets, and makes the model reuse it at every step. Returns `(masked, token, noise pairs)`."""
    num_mask = int(mask_rate * n)
    masked = torch.randperm(n)[:num_mask]
    order = torch.randperm(num_mask)
    token = masked[order[: int((1 - replace_rate) * num_mask)]]
    noise = masked[order[-int(replace_rate * num_mask):]]
    sources = torch.randperm(n)[: int(replace_rate * num_mask)]

    def fixed_mask(x, mask_rate=None):
        out = x.clone()
        out[token] = 0.0
        out[noise] = x[sources]
        out[token] += model.enc_mask_token
        return out, (masked, None)

    model.encoding_mask_noise = fixed_mask
    return masked, token, [[int(a), int(b)] for a, b in zip(noise, sources)]


def run_and_save(model, x, edge_index, optimizer, weights, mask, out_dir, stem, extra):
    """Saves `weights` (selfsup's names) as `<stem>_init.safetensors`, takes STEPS steps, and
    writes the mask, `extra` and the losses to `<stem>_steps.json`."""
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in weights.items()},
              os.path.join(out_dir, f"{stem}_init.safetensors"))
    model.train()
    losses = []
    for _ in range(STEPS):
        loss, _ = model(x, edge_index)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    masked, token, noise = mask
    record = {"source": "THUDM/GraphMAE branch pyg, commit 9127f25; torch " + torch.__version__}
    record.update(extra)
    record.update({"nodes": x.shape[0], "masked": masked.tolist(), "token": token.tolist(),
                   "noise": noise})
    record["losses"] = losses
    with open(os.path.join(out_dir, f"{stem}_steps.json"), "w") as f:
        json.dump(record, f)
    print("losses", losses[0], "...", losses[-1])
