"""lvae-explorer's logic: run discovery, encoding, latent traversals and image helpers.

No Streamlit here (the app's pages are thin wrappers over these modules), so
everything is unit-testable. Modules:

- runs:     find run folders, validate them, load models and histories
- encode:   test points, per-layer posterior means, PCA of each latent layer
- traverse: decode from any layer, PCA-direction traversals, prior samples,
            the hierarchy decomposition (which layer carries what)
- images:   pixel vectors -> grids, PNG bytes, data URIs; reading uploads
- paper:    the numbers Sønderby et al. 2016 report, for comparison
"""
