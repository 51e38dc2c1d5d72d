"""A plain PyTorch fine-tune of the encoder for NER, as a reference for the plugin's En
baseline: same sample, dev set and encoder, no spaCy in the training loop.

    python benchmarks/plain_finetune.py --epochs 10 --frozen 6

Cross-entropy on the first word piece of every word (mean over the batch's words),
the embeddings and the bottom --frozen layers frozen and computed once per sentence,
AdamW (weight decay 0.01) at --lr for the encoder and 10x for the linear head, linear
warm-up over 10% of the steps then linear decay to 0, batches of 32 sentences, one
torch thread. English dev F1 (seqeval) after every epoch; with --test, the F1 on a
target test set of the epoch best on English dev. Writes nothing: prints one JSON line.
"""
import json
import random
import time
from pathlib import Path
from typing import List, Tuple

import torch
import typer
from seqeval.metrics import f1_score
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

from spacy_concner.evaluate import iob2_tags

ROOT = Path(__file__).resolve().parents[1]


def read(path: Path) -> List[Tuple[List[str], List[str]]]:
    docs = DocBin().from_disk(path).get_docs(Vocab())
    return [([t.text for t in doc], iob2_tags(doc)) for doc in docs if len(doc)]


class Tagger(torch.nn.Module):
    def __init__(self, encoder_dir: str, frozen: int, n_tags: int):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(encoder_dir)
        self.frozen = frozen
        for module in (self.encoder.embeddings, *self.encoder.encoder.layer[:frozen]):
            module.requires_grad_(False)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, n_tags)
        self.cache = {}

    def lower(self, key, ids):
        if key not in self.cache:
            with torch.no_grad():
                enc = self.encoder
                was = enc.training
                enc.eval()
                hidden = enc.embeddings(input_ids=ids[None])
                mask = enc.get_extended_attention_mask(torch.ones_like(ids)[None], ids[None].shape)
                for layer in enc.encoder.layer[: self.frozen]:
                    hidden = layer(hidden, attention_mask=mask)[0]
                enc.train(was)
            self.cache[key] = hidden[0]
        return self.cache[key]

    def forward(self, batch):
        """batch: (key, piece ids, first-piece index per word); logits per word."""
        longest = max(len(ids) for _, ids, _ in batch)
        width = self.encoder.config.hidden_size
        hidden = torch.zeros(len(batch), longest, width)
        mask = torch.zeros(len(batch), longest, dtype=torch.long)
        for i, (key, ids, _) in enumerate(batch):
            hidden[i, : len(ids)] = self.lower(key, ids)
            mask[i, : len(ids)] = 1
        extended = self.encoder.get_extended_attention_mask(mask, mask.shape)
        for layer in self.encoder.encoder.layer[self.frozen :]:
            hidden = layer(hidden, attention_mask=extended)[0]
        return [self.head(hidden[i, firsts]) for i, (_, _, firsts) in enumerate(batch)]


def encode(tokenizer, sentences, offset: int):
    out = []
    for n, (words, _) in enumerate(sentences):
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=256)
        firsts, seen = [], set()
        for position, word in enumerate(enc.word_ids()):
            if word is not None and word not in seen:
                seen.add(word)
                firsts.append(position)
        out.append((offset + n, torch.tensor(enc["input_ids"]), torch.tensor(firsts)))
    return out


def predict(model, data, tags, sentences) -> List[List[str]]:
    model.eval()
    pred = []
    with torch.no_grad():
        for start in range(0, len(data), 64):
            for logits, (words, _) in zip(model(data[start : start + 64]), sentences[start : start + 64]):
                ids = logits.argmax(-1).tolist()
                pred.append([tags[i] for i in ids] + ["O"] * (len(words) - len(ids)))
    model.train()
    return pred


def main(
    train: Path = typer.Option(ROOT / "corpus/conll2003-en/train-n1000-s1.spacy"),
    dev: Path = typer.Option(ROOT / "corpus/conll2003-en/dev-1000.spacy"),
    test: Path = typer.Option(None, help="A target test set, scored at the best dev epoch"),
    encoder: str = typer.Option(str(ROOT / "assets/encoders/e5-small")),
    epochs: int = typer.Option(10),
    frozen: int = typer.Option(6),
    lr: float = typer.Option(1e-4),
    seed: int = typer.Option(1),
) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    random.seed(seed)
    train_sents, dev_sents = read(train), read(dev)
    test_sents = read(test) if test else []
    tags = sorted({t for _, ts in train_sents for t in ts}, key=lambda t: (t != "O", t[2:], t))
    index = {t: i for i, t in enumerate(tags)}
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    train_data = encode(tokenizer, train_sents, 0)
    dev_data = encode(tokenizer, dev_sents, 10**6)
    test_data = encode(tokenizer, test_sents, 2 * 10**6)
    model = Tagger(encoder, frozen, len(tags))
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": lr},
                                   {"params": model.head.parameters(), "lr": 10 * lr}], weight_decay=0.01)
    steps = epochs * ((len(train_data) + 31) // 32)
    schedule = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    curve, best, start = [], (-1.0, None), time.time()
    for epoch in range(epochs):
        order = list(range(len(train_data)))
        random.shuffle(order)
        for b in range(0, len(order), 32):
            rows = order[b : b + 32]
            logits = model([train_data[i] for i in rows])
            gold = torch.cat([torch.tensor([index[t] for t in train_sents[i][1][: len(lg)]]) for i, lg in zip(rows, logits)])
            loss = torch.nn.functional.cross_entropy(torch.cat(logits), gold)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        f1 = 100 * f1_score([ts for _, ts in dev_sents], predict(model, dev_data, tags, dev_sents))
        curve.append(round(f1, 1))
        if f1 > best[0] and test_sents:
            best = (f1, 100 * f1_score([ts for _, ts in test_sents], predict(model, test_data, tags, test_sents)))
        print(f"epoch {epoch + 1}: English dev F1 {f1:.1f} ({time.time() - start:.0f} s)", flush=True)
    print(json.dumps({"epochs": epochs, "frozen": frozen, "lr": lr, "dev_f1_by_epoch": curve,
                      "test_f1_at_best_dev": None if best[1] is None else round(best[1], 2)}))


if __name__ == "__main__":
    typer.run(main)
