#!/usr/bin/env python3
"""Writes a small seed corpus for each fuzz target into fuzz/corpus/<target>/: valid inputs of
each format, made here from nothing (no dataset file is read), so that the fuzzer starts from
inputs that reach deep into each reader.

    python3 fuzz/seeds.py            # from the repository root
"""

import gzip
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(ROOT, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as file:
        file.write(data)


def idx(dims, data, kind=0x08):
    header = bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + bytes(data)


def safetensors(tensors, metadata):
    """tensors: name -> (shape, list of floats) stored as little-endian f32, or
    (shape, bytes, dtype) stored as they are."""
    header, body = {}, b""
    for name, entry in sorted(tensors.items()):
        shape, values = entry[0], entry[1]
        dtype = entry[2] if len(entry) > 2 else "F32"
        data = values if dtype != "F32" else struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    header["__metadata__"] = metadata
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + body


def zstd_raw(data):
    """A zstd frame holding `data` in raw (stored) blocks: what a zstd reader accepts, written
    without a compressor."""
    frame = struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x50])  # no checksum; 1 MiB window
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for index, chunk in enumerate(chunks):
        last = 1 if index == len(chunks) - 1 else 0
        frame += struct.pack("<I", last | (len(chunk) << 3))[:3] + chunk
    return frame


def values(count, scale=0.01):
    return [((i * 37) % 11 - 5) * scale for i in range(count)]


def png(width, height, pixel):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(pixel(x, y) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main():
    images = idx([2, 3, 4], range(24), 0x08)
    write("idx", "images.idx", images)
    write("idx", "images.idx.gz", gzip.compress(images))
    write("idx", "labels.idx", idx([5], [0, 1, 2, 3, 4]))

    # A logistic-regression classifier and a tiny language model, with their recipes.
    logreg = {"dense.weight": ([10, 784], values(7840)), "dense.bias": ([10], values(10))}
    recipe = {"task": "image-classifier", "model": "logreg", "dropout": 0.0, "dataset": "mnist"}
    write("checkpoint", "logreg.safetensors", safetensors(
        logreg, {"format": "pt", "app": "mnist-classifier", "recipe": json.dumps(recipe)}))
    write("checkpoint", "logreg-old-format.safetensors", safetensors(
        logreg, {"format": "pt", "app": "mnist-classifier", "model": "logreg", "dropout": "0", "dataset": "mnist"}))
    vocab, embedding, hidden = 3, 2, 2
    text_model = {
        "embedding.weight": ([vocab, embedding], values(vocab * embedding)),
        "lstm.weight_ih_l0": ([4 * hidden, embedding], values(4 * hidden * embedding)),
        "lstm.weight_hh_l0": ([4 * hidden, hidden], values(4 * hidden * hidden)),
        "lstm.bias_ih_l0": ([4 * hidden], values(4 * hidden)),
        "lstm.bias_hh_l0": ([4 * hidden], values(4 * hidden)),
        "head.weight": ([vocab, hidden], values(vocab * hidden)),
        "head.bias": ([vocab], values(vocab)),
    }
    text_recipe = {"task": "language-model", "architecture": "embedding-lstm-dense",
                   "config": {"vocab_size": vocab, "embedding": embedding, "hidden": hidden, "layers": 1, "dropout": 0.0},
                   "tokenizer_kind": "char"}
    tokenizer = json.dumps({"kind": "char", "data": {"characters": "abc"}})
    write("checkpoint_round_trip", "two.bin", bytes([1]) + b"w" + bytes([2, 2]) + struct.pack("<4f", 1, -2, 0.5, 3)
          + bytes([2]) + b"bb" + bytes([1, 3]) + struct.pack("<3f", 0, 1e-40, -0.0))
    write("checkpoint", "text.safetensors", safetensors(
        text_model, {"format": "pt", "app": "text-gen", "recipe": json.dumps(text_recipe), "tokenizer": tokenizer}))

    # The smallest GAN (MLP, width 1, z of 1) with its recipe.
    gan = {}
    for name, shape in [("generator.hidden", [8, 1]), ("generator.wide", [16, 8]), ("generator.to_image", [784, 16]),
                        ("discriminator.wide", [16, 784]), ("discriminator.hidden", [8, 16]),
                        ("discriminator.classify", [1, 8])]:
        gan[name + ".weight"] = (shape, values(shape[0] * shape[1]))
        gan[name + ".bias"] = ([shape[0]], values(shape[0]))
    gan_recipe = {"task": "gan", "model": "mlp", "width": 1, "latent_dim": 1, "conditional": False, "dataset": "mnist"}
    write("checkpoint", "gan.safetensors", safetensors(
        gan, {"format": "pt", "app": "mnist-gan", "recipe": json.dumps(gan_recipe)}))

    # The logistic regression in int8 (safetensors) and in the compact format, half its weights
    # pruned (bitmask coding).
    int8_weights = bytes(((i * 37) % 11 - 5) & 0xFF if i % 2 else 0 for i in range(7840))
    int8 = {"dense.weight": ([10, 784], int8_weights, "I8"), "dense.weight_scale": ([10], [0.01] * 10),
            "dense.bias": ([10], values(10)), "dense.input_quantization": ([2], [1 / 255, 0.0])}
    int8_metadata = {"format": "dl-compress int8 1", "app": "mnist-classifier", "recipe": json.dumps(recipe),
                     "quantization": json.dumps({"precision": "int8"})}
    write("compressed_model", "logreg.int8.safetensors", safetensors(int8, int8_metadata))
    mask = bytes(0b10101010 for _ in range(7840 // 8))
    nonzero = bytes(b for b in int8_weights[1::2])
    layer = {"name": "dense", "shape": [10, 784], "encoding": "bitmask",
             "weight_bytes": len(mask) + len(nonzero), "entries": len(nonzero)}
    header = json.dumps({"version": 1, "metadata": int8_metadata, "layers": [layer]}).encode()
    body = (struct.pack("<I", len(header)) + header + mask + nonzero + struct.pack("<10f", *[0.01] * 10)
            + struct.pack("<10f", *values(10)) + struct.pack("<2f", 1 / 255, 0.0))
    write("compressed_model", "logreg.dlc", b"DLCOMPCT" + zstd_raw(body))
    # An ensemble bundle of that int8 model and its compact copy: each member file, byte for
    # byte, as a U8 tensor.
    int8_file = safetensors(int8, int8_metadata)
    compact_file = b"DLCOMPCT" + zstd_raw(body)
    write("compressed_model", "ensemble.safetensors", safetensors(
        {"member_1": ([len(int8_file)], int8_file, "U8"), "member_2": ([len(compact_file)], compact_file, "U8")},
        {"ensemble": json.dumps({"version": 1, "method": "mean", "members": ["logreg.int8.safetensors", "logreg.dlc"]}),
         "dataset": "mnist"}))

    # Adam's state for one variable, in the current and the first format.
    moments = {"w.exp_avg": ([2, 2], values(4)), "w.exp_avg_sq": ([2, 2], [0.001] * 4)}
    config = {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0}
    write("optimizer_state", "adam.safetensors", safetensors(moments, {
        "format": "dl-optim optimizer state 2", "kind": "adam", "steps": "3", "w.step": "3", "config": json.dumps(config)}))
    write("optimizer_state", "adam-first-format.safetensors", safetensors(moments, dict(
        {k: str(v) for k, v in config.items()}, format="dl-optim optimizer state 1", kind="adam", steps="3", **{"w.step": "3"})))
    write("optimizer_state", "sgd.safetensors", safetensors({"w.momentum_buffer": ([3], values(3))}, {
        "format": "dl-optim optimizer state 2", "kind": "sgd", "steps": "1",
        "config": json.dumps({"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0})}))

    header = "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,learning_rate,seconds,examples_per_second"
    write("history", "classifier.csv", (header + "\n1,0.153287,0.954133,,,9.0e-4,14.800,4054.0\n"
                                        "2,0.046331,0.986083,0.05,0.98,6.5e-4,15.618,3841.7\n").encode())
    write("history", "gan.csv", (header + ",d_loss,g_loss\n1,1.2,,,,2e-4,3.0,100.0,0.6,0.9\n").encode())

    write("digit_image", "seven.png", png(12, 12, lambda x, y: 255 if (y == 2 and 2 <= x <= 9) or (x == 9 - (y - 2) // 2 and y > 2) else 0))
    write("digit_image", "blank.png", png(4, 4, lambda x, y: 0))

    # http_api: [method, path, content type, query length, query..., body...], indices as in
    # fuzz_targets/http_api.rs (POST=0, GET=1; /api/predict=0, /api/explain=1, /api/info=2;
    # image/png=0, application/octet-stream=2, application/json=3)
    seven = png(12, 12, lambda x, y: 255 if (y == 2 and 2 <= x <= 9) or (x == 9 - (y - 2) // 2 and y > 2) else 0)
    write("http_api", "predict.png", bytes([0, 0, 0, 0]) + seven)
    query = b"method=gradcam&target=3"
    write("http_api", "explain.png", bytes([0, 1, 0, len(query)]) + query + seven)
    write("http_api", "raw.bin", bytes([0, 0, 2, 0]) + bytes(range(256)) * 3 + bytes(16))
    write("http_api", "pixels.json", bytes([0, 0, 3, 0]) + json.dumps({"pixels": [0.5] * 784}).encode())
    write("http_api", "info", bytes([1, 2, 5, 0]))

    with open(os.path.join(ROOT, "..", "apps", "mnist-classifier", "search-space.toml"), "rb") as file:
        write("search_space", "default.toml", file.read())
    write("search_space", "grid.toml", b'[width]\ntype = "int"\nlow = 16\nhigh = 64\nstep = 16\n'
                                       b'[rate]\ntype = "float"\nlow = 1e-4\nhigh = 1e-1\nlog = true\npoints = 4\n')
    header = {"seed": 7, "sampler": "tpe", "pruner": {"kind": "median", "startup_trials": 5, "warmup_epochs": 0},
              "direction": "maximize", "jobs": 1, "metric": "validation_accuracy",
              "space": {"rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": True}}}
    events = [
        {"event": "search", "version": 1, "header": header},
        {"event": "trial_started", "trial": 0, "config": {"rate": 0.001}},
        {"event": "report", "trial": 0, "epoch": 1, "value": 0.97},
        {"event": "trial_finished", "trial": 0, "state": "complete", "value": 0.98, "seconds": 4.2, "error": None},
        {"event": "trial_started", "trial": 1, "config": {"rate": 0.01}},
        {"event": "report", "trial": 1, "epoch": 1, "value": 0.5},
    ]
    write("search_journal", "journal.jsonl", "".join(json.dumps(event) + "\n" for event in events).encode())

    write("text", "corpus.txt", "To be, or not to be: that is the question.\n".encode())
    write("text", "bom.txt", "\ufeffdeep learning 深度学习\n".encode())
    write("text", "tokenizer.json", tokenizer.encode())

    with open(os.path.join(ROOT, "..", "datasets", "manifest.toml"), "rb") as file:
        write("manifest", "manifest.toml", file.read())


if __name__ == "__main__":
    main()
