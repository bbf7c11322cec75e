"""English topic and sentiment datasets of FastBERT Table 2 (Liu et al., 2020).

Only AG News has an offline copy here; the others load from the hub (or a mirror folder named after
the dataset in canonical layout). Their official splits are train/test, so validation is carved
from train with a fixed seed.
"""

from fastexit_bench.data.sources import HubSource, TableFiles
from fastexit_bench.data.spec import Carve, DatasetSpec, register_dataset

PAPER = "FastBERT Table 2 (Liu et al., 2020)"
TRAIN_TEST = {"train": "train", "test": "test"}
VALIDATION_FROM_TRAIN = Carve("train", {"train": 0.9, "validation": 0.1})
AG_LABELS = ("World", "Sports", "Business", "Sci/Tech")


def fastbert_english(name: str, title: str, labels: tuple[str, ...], hub: HubSource) -> DatasetSpec:
    """A hub-only FastBERT English dataset (train/test, validation carved from train)."""
    return DatasetSpec(
        name=name,
        title=title,
        language="en",
        task="classification",
        label_names=labels,
        metrics=("accuracy",),
        sources=(),
        hub=hub,
        eval_splits=("validation", "test"),
        carve=VALIDATION_FROM_TRAIN,
        paper=PAPER,
    )


register_dataset(
    DatasetSpec(
        name="ag_news",
        title="Ag.News",
        language="en",
        task="classification",
        label_names=AG_LABELS,
        metrics=("accuracy",),
        sources=(
            TableFiles(
                roots=("ag_news/alps",),
                files={"train": "dev.tsv", "test": "test.tsv"},
                header=False,
                columns={"text_a": 0, "label": 1},
                note="description-only text; train = 10,001 rows drawn from AG News train (alps dev.tsv)",
            ),
            TableFiles(
                roots=("ag_news_csv", "ag_news", "ag_news/transformerclassification"),
                files={"train": "train.csv", "test": "test.csv"},
                fmt="csv",
                header=False,
                columns={"text_a": (1, 2), "label": 0},
                label_map={str(i + 1): name for i, name in enumerate(AG_LABELS)},
                note="original AG News CSV (class, title, description); text = title + description",
            ),
        ),
        hub=HubSource("fancyzhx/ag_news", splits=TRAIN_TEST, columns={"text_a": "text", "label": "label"}),
        eval_splits=("validation", "test"),
        carve=VALIDATION_FROM_TRAIN,
        paper=PAPER,
    )
)
register_dataset(
    fastbert_english(
        "amazon_full",
        "Amz.F",
        tuple(f"{i} star" for i in range(1, 6)),
        HubSource(
            "yassiracharki/Amazon_Reviews_for_Sentiment_Analysis_fine_grained_5_classes",
            splits=TRAIN_TEST,
            columns={"text_a": ("review_title", "review_text"), "label": "class_index"},
            label_map={str(i): f"{i} star" for i in range(1, 6)},
            note="community copy of Zhang et al. (2015) amazon_review_full; not verified offline",
        ),
    )
)
register_dataset(
    fastbert_english(
        "dbpedia",
        "DBpedia",
        (
            "Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
            "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork",
        ),
        HubSource("fancyzhx/dbpedia_14", splits=TRAIN_TEST, columns={"text_a": ("title", "content"), "label": "label"}),
    )
)
register_dataset(
    fastbert_english(
        "yahoo",
        "Yahoo",
        (
            "Society & Culture", "Science & Mathematics", "Health", "Education & Reference",
            "Computers & Internet", "Sports", "Business & Finance", "Entertainment & Music",
            "Family & Relationships", "Politics & Government",
        ),
        HubSource(
            "community-datasets/yahoo_answers_topics",
            splits=TRAIN_TEST,
            columns={"text_a": ("question_title", "question_content", "best_answer"), "label": "topic"},
        ),
    )
)
register_dataset(
    fastbert_english(
        "yelp_full",
        "Yelp.F",
        tuple(f"{i} star" for i in range(1, 6)),
        HubSource("fancyzhx/yelp_review_full", splits=TRAIN_TEST, columns={"text_a": "text", "label": "label"}),
    )
)
register_dataset(
    fastbert_english(
        "yelp_polarity",
        "Yelp.P",
        ("negative", "positive"),
        HubSource("fancyzhx/yelp_polarity", splits=TRAIN_TEST, columns={"text_a": "text", "label": "label"}),
    )
)
