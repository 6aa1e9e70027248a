"""The rag_quality benchmark's small tiers: every label names a document of its corpus, and
sage-lsp meets the tiers' goal on the written corpora."""

from __future__ import annotations

import pytest

from bench.rag_quality import TIER_GOAL, TIERS, K, run_tier, tier_corpora, tier_table


@pytest.mark.parametrize("tier", TIERS)
def test_labels_name_documents_of_the_corpus(tier: str) -> None:
    for source, asked in tier_corpora(tier):
        assert asked
        for q in asked:
            assert q.labels and all((source / label).is_file() for label in q.labels), q.text


@pytest.mark.parametrize("tier", ["small", "bilingual"])
def test_sage_lsp_meets_the_goal_and_the_table_shows_both(tier: str) -> None:
    result = run_tier(tier)
    assert result["ours"]["hit_at_4"] >= TIER_GOAL
    assert all(r["ours_rank"] is not None and r["ours_rank"] <= K for r in result["per_question"])
    [row] = [line for line in tier_table({tier: result}) if line.startswith(f"| {tier} ")]
    assert f"{result['baseline']['hit_at_4']:.1%}" in row
