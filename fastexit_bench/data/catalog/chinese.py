"""Chinese datasets of FastBERT Table 2 (Liu et al., 2020), in UER-py's ``label\\ttext_a`` layout.

Where the copy here lacks a train file (Weibo, LCQMC, THUCNews), train and validation are carved
from the dev file with a fixed seed and the test file stays the test split.
"""

from fastexit_bench.data.sources import HubSource, SavedDataset, TableFiles
from fastexit_bench.data.spec import Carve, DatasetSpec, register_dataset

PAPER = "FastBERT Table 2 (Liu et al., 2020)"
UER_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
UER_COLUMNS = {"text_a": "text_a", "label": "label"}
SENTIMENT = ("negative", "positive")
TRAIN_FROM_DEV = Carve("validation", {"train": 0.8, "validation": 0.2})


def chinese(name: str, title: str, sources: tuple, **kwargs) -> DatasetSpec:
    """A Chinese classification dataset with validation and test splits."""
    defaults = {"label_names": SENTIMENT, "metrics": ("accuracy",), "eval_splits": ("validation", "test"), "paper": PAPER}
    return DatasetSpec(name=name, title=title, language="zh", task="classification", sources=sources, **defaults | kwargs)


register_dataset(
    chinese(
        "chnsenticorp",
        "ChnSentiCorp",
        (
            TableFiles(roots=("chnsenticorp/uer", "chnsenticorp"), files=UER_FILES, columns=UER_COLUMNS),
            SavedDataset(
                roots=("chnsenticorp/hf_arrow_forever1986",),
                folders={"train": "train", "validation": "validation", "test": "test"},
                columns={"text_a": "text", "label": "label"},
            ),
        ),
        hub=HubSource(
            "lansinuote/ChnSentiCorp",
            splits={"train": "train", "validation": "validation", "test": "test"},
            columns={"text_a": "text", "label": "label"},
        ),
    )
)
register_dataset(
    chinese(
        "book_review",
        "Book review",
        (
            TableFiles(
                roots=("book_review/uer_douban_2019", "douban_book_review", "book_review"),
                files=UER_FILES,
                columns=UER_COLUMNS,
                note="FastBERT's douban book review (UER-py 2019), 20k/10k/10k",
            ),
        ),
    )
)
register_dataset(
    chinese(
        "shopping",
        "Shopping",
        (
            TableFiles(
                roots=("shopping/uer_2019", "shopping"),
                files=UER_FILES,
                columns=UER_COLUMNS,
                label_map={"0": "positive", "1": "negative"},
                note="labels are inverted in this copy (0=positive, 1=negative) and mapped back",
            ),
        ),
    )
)
register_dataset(
    chinese(
        "weibo",
        "Weibo",
        (TableFiles(roots=("weibo/redesign_vocab", "weibo"), files=UER_FILES, columns=UER_COLUMNS),),
        carve=TRAIN_FROM_DEV,
    )
)
register_dataset(
    chinese(
        "lcqmc",
        "LCQMC",
        (
            TableFiles(
                roots=("lcqmc/redesign_vocab", "lcqmc"),
                files={"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
                header=False,
                columns={"text_a": 0, "text_b": 1, "label": 2},
            ),
        ),
        hub=HubSource(
            "C-MTEB/LCQMC",
            splits={"train": "train", "validation": "validation", "test": "test"},
            columns={"text_a": "sentence1", "text_b": "sentence2", "label": "score"},
        ),
        label_names=("different", "similar"),
        text_fields=("text_a", "text_b"),
        carve=TRAIN_FROM_DEV,
    )
)
register_dataset(
    chinese(
        "thucnews",
        "THUCNews",
        (
            TableFiles(
                roots=("thucnews/chinese_text_classification_pytorch", "thucnews"),
                files={"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
                header=False,
                columns={"text_a": 0, "label": 1},
                note="10-class news-title subset (1k per class in dev and test)",
            ),
        ),
        label_names=(
            "finance", "realty", "stocks", "education", "science",
            "society", "politics", "sports", "game", "entertainment",
        ),
        carve=TRAIN_FROM_DEV,
    )
)
