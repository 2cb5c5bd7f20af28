"""What a candidate is: tabular genotypes, or model source code (and the reference models)."""
