"""Tiny random-weight models saved to folders, so tests need no downloads.

Each builder is seeded and takes about a second on CPU. The models produce nonsense text, but
they load and run through exactly the same code paths as the real checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from pica.config import PROMPTCAP_PROMPT

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
PUNCTUATION = list(".,:;?!'\"-()/")
WORD_TEXT = """
a an the of to in on at by for with from and or but not no yes is are was were be been being
this that these those it its there here what which who whom whose where when why how many much
some any all each every both few more most other such only own same so than too very can will
just do does did have has had having i you he she we they me him her us them my your his our
their man woman boy girl child children person people player men women baby dog dogs cat cats
horse horses cow cows sheep bird birds elephant elephants bear giraffe zebra animal animals
car cars truck bus train plane airplane boat bike bicycle motorcycle street road sidewalk
city building buildings house room kitchen bathroom bedroom table chair couch bed desk window
door wall floor sign light traffic pizza cake food plate bowl cup glass bottle sandwich banana
apple orange broccoli hot donut fruit water beach ocean sea lake river snow grass field park
tree trees sky cloud clouds mountain hill sand wave surf surfboard skateboard skis ski tennis
racket ball baseball bat frisbee kite umbrella bag suitcase phone laptop computer
keyboard mouse tv television clock book books vase scissors teddy toilet sink oven refrigerator
red blue green yellow white black brown gray grey pink purple orange small large big little
young old tall long short two three four five one several group top front back side near next
sitting standing riding holding walking playing eating looking flying lying laying parked
driving wearing carrying cutting covered filled open close up down over under inside outside
please describe image according given question picture photo view shown background foreground
color kind type sport made used country year brand name game team shirt hat jacket
"""


def _vocab() -> list[str]:
    words = list(dict.fromkeys(WORD_TEXT.split()))
    prompt_words = PROMPTCAP_PROMPT.replace("{question}", "").replace(":", " ").split()
    words += [w for w in prompt_words if w not in words]
    return SPECIAL_TOKENS + PUNCTUATION + words


def _bert_tokenizer(path: Path, bos: str | None = None):
    from transformers import BertTokenizer
    from transformers.models.bert.tokenization_bert import load_vocab

    from pica.util.hub import quiet_transformers

    quiet_transformers()
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    kwargs = {"bos_token": bos} if bos else {}
    return BertTokenizer(vocab=dict(load_vocab(vocab_file)), model_max_length=64, **kwargs)


def make_tiny_blip(path: str | Path) -> Path:
    """Save a tiny random ``BlipForConditionalGeneration`` + ``BlipProcessor`` into ``path``."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    path = Path(path)
    tokenizer = _bert_tokenizer(path, bos="[DEC]")
    vocab = tokenizer.get_vocab()
    image_size = 32
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": 16,
                       "projection_dim": 32, "initializer_range": 0.5},
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "encoder_hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 64, "projection_dim": 32, "initializer_range": 0.2,
                     "bos_token_id": vocab["[DEC]"], "pad_token_id": vocab["[PAD]"],
                     "eos_token_id": vocab["[SEP]"], "sep_token_id": vocab["[SEP]"]},
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path


def make_tiny_git(path: str | Path) -> Path:
    """Save a tiny random ``GitForCausalLM`` + ``GitProcessor`` (CLIP image processor) into ``path``."""
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    path = Path(path)
    tokenizer = _bert_tokenizer(path)
    vocab = tokenizer.get_vocab()
    image_size = 32
    config = GitConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": 16,
                       "initializer_range": 0.5},
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2,
        bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"], pad_token_id=vocab["[PAD]"],
    )
    torch.manual_seed(0)
    model = GitForCausalLM(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    GitProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path


def make_tiny_vision_encoder_decoder(path: str | Path) -> Path:
    """Save a tiny random ``VisionEncoderDecoderModel`` (ViT encoder, BERT decoder) into ``path``.

    Like ViT-GPT2 captioners it has no joint processor: the image processor and the tokenizer
    are saved side by side, and ``AutoProcessor`` finds only the tokenizer.
    """
    import torch
    from transformers import (
        BertConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    path = Path(path)
    tokenizer = _bert_tokenizer(path)
    vocab = tokenizer.get_vocab()
    encoder = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        image_size=32, patch_size=16)
    decoder = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, is_decoder=True,
                         add_cross_attention=True, initializer_range=0.2)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = vocab["[CLS]"]
    config.pad_token_id = vocab["[PAD]"]
    config.eos_token_id = vocab["[SEP]"]
    torch.manual_seed(0)
    VisionEncoderDecoderModel(config=config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}


def make_tiny_open_clip(path: str | Path) -> Path:
    """Save a tiny random open_clip model as a ``local-dir:`` folder (config + safetensors)."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP_CONFIG["model_cfg"])
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    (path / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG, indent=2), encoding="utf-8")
    return path


def make_tiny_mmproj(path: str | Path, n_embd_text: int, seed: int = 0) -> Path:
    """A random-weight LLaVA-style (``mlp`` projector) CLIP vision projector GGUF, written with the
    ``gguf`` package: a one-block ViT on 28x28 images (4 patches of 14) whose two-layer MLP
    projects into a text model of width ``n_embd_text`` (640 for the packaged Gemma 3 270M)."""
    import gguf
    import numpy as np

    path = Path(path)
    d, ff, image, patch = 32, 64, 28, 14
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    for key, value in (("image_size", image), ("patch_size", patch), ("embedding_length", d),
                       ("feed_forward_length", ff), ("projection_dim", n_embd_text),
                       ("block_count", 1), ("attention.head_count", 2)):
        w.add_uint32(f"clip.vision.{key}", value)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("v.patch_embd.weight", d, 3, patch, patch)
    tensor("v.class_embd", d)
    tensor("v.position_embd.weight", (image // patch) ** 2 + 1, d)
    for norm in ("v.pre_ln", "v.blk.0.ln1", "v.blk.0.ln2"):
        tensor(f"{norm}.weight", d)
        tensor(f"{norm}.bias", d)
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        tensor(f"v.blk.0.{name}.weight", d, d)
        tensor(f"v.blk.0.{name}.bias", d)
    tensor("v.blk.0.ffn_up.weight", ff, d)
    tensor("v.blk.0.ffn_up.bias", ff)
    tensor("v.blk.0.ffn_down.weight", d, ff)
    tensor("v.blk.0.ffn_down.bias", d)
    tensor("mm.0.weight", n_embd_text, d)
    tensor("mm.0.bias", n_embd_text)
    tensor("mm.2.weight", n_embd_text, n_embd_text)
    tensor("mm.2.bias", n_embd_text)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
