"""BPE report tokenizer trained with `tokenizers` on report text, with the engine's special tokens.

Metaspace pre-tokenisation keeps decoding lossless (up to lower-casing and whitespace), so each
generated token maps back onto a character span of the drafted text (the UI highlights by token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, MASK, UNK = "[PAD]", "[MASK]", "[UNK]"
FINDINGS, IMPRESSION, QUESTION, ANSWER, IMG, SEP = (
    "[FINDINGS]", "[IMPRESSION]", "[QUESTION]", "[ANSWER]", "[IMG]", "[SEP]")
SPECIAL_TOKENS = [PAD, MASK, UNK, FINDINGS, IMPRESSION, QUESTION, ANSWER, IMG, SEP]
TOKENIZER_FILE = "text_tokenizer.json"


@dataclass(frozen=True)
class TokenSpan:
    token_id: int
    text: str
    char_start: int
    char_end: int


class TextTokenizer:
    """Thin wrapper that fixes the special-token ids and gives span-aware decoding."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tk = tokenizer
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"text tokenizer lacks special tokens {missing}")
        self.ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
        self.pad_id, self.mask_id = self.ids[PAD], self.ids[MASK]
        self.special_ids = frozenset(self.ids.values())

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 2000) -> TextTokenizer:
        tk = Tokenizer(models.BPE(unk_token=UNK))
        tk.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
        tk.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
        tk.train_from_iterator((t for t in texts if t and t.strip()), trainer=trainer)
        return cls(tk)

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.tk.save(str(Path(directory) / TOKENIZER_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> TextTokenizer:
        path = Path(directory) / TOKENIZER_FILE
        if not path.exists():
            raise FileNotFoundError(f"no text tokenizer at {path}")
        return cls(Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode_spans(self, ids: Iterable[int]) -> tuple[str, list[TokenSpan]]:
        """Text of the non-special ids and, per id (special ones included, empty span), its char span."""
        text, spans = "", []
        for i in ids:
            i = int(i)
            if i in self.special_ids:
                spans.append(TokenSpan(i, "", len(text), len(text)))
                continue
            piece = self.tk.id_to_token(i) or ""
            piece = piece.replace("\u2581", " ")
            if not text:
                piece = piece.lstrip(" ")
            start = len(text) + (len(piece) - len(piece.lstrip(" ")))
            text += piece
            spans.append(TokenSpan(i, piece.strip(" "), start, len(text)))
        return text, spans

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_spans(ids)[0]
