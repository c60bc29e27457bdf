from shared.config_doc import DOC_PATH, render


def test_committed_configuration_reference_matches_the_settings_model() -> None:
    assert DOC_PATH.read_text() == render(), "docs/configuration.md is stale: run `make docs`"
