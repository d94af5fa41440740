"""The pipeline stages, one module each, in the order a day runs them:
behave, observe, dossier (file), score, classify, sanction, respond, measure."""
