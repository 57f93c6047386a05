"""The federated pillar (see DESIGN.md); its implementation lands with its own issue."""
