"""For a teacher (issue 27, item 12): the terms the pages use, a sentence each (the sidebar's glossary), and a
hideable one-line "what to notice" under each chart."""
from __future__ import annotations

import streamlit as st

TERMS = {
    "z1 … zL": "the latent layers, z1 next to the image, zL the top; a Ladder VAE samples them top-down.",
    "KL (rate)": "KL(q(z_i|·) ‖ p(z_i|z_i+1)) in nats per image: how much layer i tells about the image beyond "
                 "what the layer above already says. About 0: the layer is ignored.",
    "A_u (activity)": "Cov_x(E_q[u|x]): how much a unit's posterior mean moves from image to image (Burda et al. "
                      "2016). A unit is active when A_u > 0.01.",
    "active units": "the units with A_u > 0.01, per layer; a layer with none is collapsed.",
    "active channels": "NVAE's count (Vahdat & Kautz 2020, their code): the channels of a layer whose KL per image, "
                       "summed over the channel's positions, is above 0.1 nats; a vector layer's channels are its "
                       "units. It often disagrees with the active units.",
    "collapsed layer": "a layer whose posterior equals its prior whatever the image: no active units, KL ≈ 0; "
                       "moving its code changes nothing the model decodes.",
    "active only through the layer above": "a unit whose mean moves with the image (A_u > 0.01) while its own KL is "
                                           "nil: it copies p(z_i|z_i+1), carrying the layer above's information.",
    "distortion": "−E log p(x|z1): how badly the image is reconstructed, in nats.",
    "ELBO": "the evidence lower bound, −(distortion + the KL of every layer): what training maximises; higher is "
            "better.",
    "IW, L_K, IW-K": "the importance-weighted bound with K samples (Burda et al. 2016): L_1 is the ELBO, and L_K "
                     "rises towards log p(x) as K grows; the paper reports K = 5000.",
    "log p(x)": "the model's log-likelihood of a test image, estimated by IW-K; higher is better.",
    "prior sd": "the standard deviation of p(z_i|z_i+1) along an axis: an axis 'in prior sd' measures the codes' "
                "spread in units of what the prior expects (1 = as wide as the prior).",
    "posterior mean / sample": "the centre of q(z_i|x) / one draw from it; the Layers page plots either.",
    "mean path": "encoding with every layer at its posterior mean (nothing sampled): the same code every time.",
    "warm-up (WU)": "the KL term's weight rises from 0 to 1 over the first epochs, so layers start to be used "
                    "before the prior pulls them in (Sønderby et al. 2016, Sec. 2.3).",
    "BN": "batch normalization in the deterministic layers (Sec. 2.3).",
    "test image N": "a test image by its position in the dataset's test set: the one number every page, hover "
                    "and file uses.",
    "temperature": "a factor on the prior's standard deviations when sampling: 0 takes the means, 1 the model's own "
                   "spread; for codes, the prior's logits are divided by it (0: the likeliest code).",
    "codebook, code (VQ-VAE)": "a VQ-VAE's layer is a map of codes: each position holds the number of the nearest "
                               "of K code vectors (its codebook), and the decoder reads those vectors.",
    "codes used, perplexity": "how many of a codebook's codes the test images choose at least once, and exp(entropy) "
                              "of their use (K when all are used alike): the codebook's twin of active units.",
    "dead code": "a code no image chooses; training revives a code whose use falls under a threshold by moving it "
                 "onto an encoder output.",
    "-log p of the codes": "a VQ-VAE layer's rate: the nats its prior (a PixelCNN over the map) pays for the image's "
                           "codes; with the reconstruction it makes the bound log p(x|z) + log p(z), the VQ-VAE's ELBO.",
}


NOTES = "teaching_notes"  # session_state: the sidebar's "What to notice" toggle


def notice(text: str) -> None:
    """A one-line "what to notice" under a chart, for a class; hidden with the sidebar's toggle."""
    if st.session_state.get(NOTES, True):
        st.caption(f":material/lightbulb: **What to notice:** {text}")


def glossary() -> None:
    """The glossary as a collapsed expander (in the sidebar, where every page has it)."""
    st.toggle("What to notice (a line under each chart)", value=True, key=NOTES,
              help="one line per chart on what it shows, for a class; off for a cleaner page")
    with st.expander("Glossary", icon=":material/menu_book:"):
        st.markdown("\n".join(f"- **{term}**: {text}" for term, text in TERMS.items()))
