"""PDFs the tests build themselves with PyMuPDF: two columns, headings, a ruled table, a caption,
references; and broken files (encrypted, truncated, empty, image-only, not a PDF)."""

import pymupdf

LEFT = [
    ("1 Introduction", True),
    ("Deep networks for image classification keep getting deeper. We study how a residual connection "
     "lets gradients flow through many layers, so that very deep models can be trained well.", False),
    ("2 Method", True),
    ("Our block uses a depthwise separable convolution followed by batch normalization and a ReLU "
     "activation. The depthwise separable convolution factorizes a standard convolution into a "
     "depthwise step and a pointwise step, which saves computation.", False),
]
RIGHT = [
    ("We add a squeeze-and-excitation module that recalibrates channel responses with a small gating "
     "network. Global average pooling and a linear classifier form the head of the network.", False),
    ("Table 1. Results of the three variants on the validation set.", False),
]
EXTRA_PAGE = [
    ("3 Experiments", True),
    ("Stochastic depth randomly drops residual branches during training, which acts as a regularizer "
     "and shortens the expected depth of the network.", False),
    ("References", True),
    ("[1] K. He, X. Zhang, S. Ren, J. Sun. Deep residual learning for image recognition. CVPR 2016.", False),
]


def _column(page, x0, x1, y, items, size=10):
    for text, heading in items:
        fs = 13 if heading else size
        font = "hebo" if heading else "helv"
        rect = pymupdf.Rect(x0, y, x1, y + 400)
        rest = page.insert_textbox(rect, text, fontsize=fs, fontname=font)
        used = rect.height - rest
        y += used + 8
    return y


def make_paper(path, title="Residual Blocks with Separable Convolutions", authors="Ada Lovelace, Alan Turing",
               extra_page=True, body=None):
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(72, 50, 540, 80), title, fontsize=17, fontname="hebo", align=1)
    assert page.insert_textbox(pymupdf.Rect(72, 84, 540, 104), authors, fontsize=11, fontname="helv", align=1) >= 0
    assert page.insert_textbox(pymupdf.Rect(72, 108, 540, 124), "arXiv preprint, CVPR 2024", fontsize=9,
                               fontname="helv", align=1) >= 0
    _column(page, 50, 296, 140, body or LEFT)
    y = _column(page, 316, 562, 140, RIGHT)
    # a ruled 3x3 table under the right column (find_tables' lines_strict strategy sees the rules)
    x0, y0, cw, rh = 330, y + 10, 70, 18
    cells = [["Model", "Params", "Top-1"], ["A", "1.2M", "71.3"], ["B", "3.4M", "74.9"]]
    for r in range(4):
        page.draw_line((x0, y0 + r * rh), (x0 + 3 * cw, y0 + r * rh))
    for c in range(4):
        page.draw_line((x0 + c * cw, y0), (x0 + c * cw, y0 + 3 * rh))
    for r, row in enumerate(cells):
        for c, val in enumerate(row):
            page.insert_text((x0 + c * cw + 4, y0 + r * rh + 13), val, fontsize=9, fontname="helv")
    if extra_page:
        p2 = doc.new_page(width=612, height=792)
        _column(p2, 50, 296, 60, EXTRA_PAGE)
    doc.set_metadata({"title": "", "author": ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()
    return path


def make_encrypted(path):
    src = pymupdf.open()
    src.new_page().insert_text((72, 72), "secret " * 50)
    src.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="user")
    return path


def make_image_only(path):
    doc = pymupdf.open()
    page = doc.new_page()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), 0)
    pix.set_rect(pix.irect, (200, 200, 200))
    page.insert_image(pymupdf.Rect(72, 72, 300, 300), pixmap=pix)
    doc.save(path)
    return path


def make_truncated(path, source):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def make_runin_paper(path, title="Normalized Separable Networks", heads=None):
    """A paper whose paragraphs start with bold heads ("Batch normalization. Every convolution ..."): the
    run-in heads a knowledge build takes as candidate ideas (knowledge/candidates.py)."""
    heads = heads or [
        ("Batch normalization", "Every convolution is followed by batch normalization, which normalizes each channel "
                                "with the statistics of the mini-batch."),
        ("Depthwise separable convolution", "A depthwise separable convolution factorizes a standard convolution into "
                                            "a depthwise and a pointwise step, which saves computation."),
        ("Datasets", "We train on CIFAR-10 and report the accuracy on its test set."),
    ]  # fmt: skip
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(72, 50, 540, 80), title, fontsize=17, fontname="hebo", align=1)
    html = "".join(f"<p style='font-size:10pt'><b>{h}.</b> {t}</p>" for h, t in heads)
    page.insert_htmlbox(pymupdf.Rect(50, 140, 296, 700), html)
    doc.set_metadata({"title": "", "author": ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()
    return path
