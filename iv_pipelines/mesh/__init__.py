"""The service mesh: a generator for realistic meshes and TTF (thermodynamic) routing."""
