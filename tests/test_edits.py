"""SEARCH/REPLACE edits against a parent file: exact application, and the reasons a bad edit is refused."""

from __future__ import annotations

import pytest

from fairnad.space.code import builder_defaults, restore_defaults, summary
from fairnad.space.edits import EditError, apply_edits, has_edits, parse_edits
from fairnad.space.reference import reference

PARENT = reference("mnist1d-cnn").source()


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_an_edit_replaces_exactly_the_searched_lines():
    answer = "Swap GELU for SiLU.\n```python\n" + block("        self.act = nn.GELU()", "        self.act = nn.SiLU()") + "\n```"
    assert has_edits(answer)
    child = apply_edits(PARENT, parse_edits(answer))
    assert "nn.SiLU()" in child and "nn.GELU()" not in child
    # everything else is the parent's, byte for byte
    assert child.replace("nn.SiLU()", "nn.GELU()") == PARENT.rstrip("\n") + "\n"


def test_several_blocks_apply_in_order_and_may_add_lines():
    answer = "\n".join([
        block("        self.bn = nn.BatchNorm1d(cout)", "        self.bn = nn.BatchNorm1d(cout)\n        self.drop = nn.Dropout(0.1)"),
        "",
        block("        return self.act(self.bn(self.conv(x)))", "        return self.drop(self.act(self.bn(self.conv(x))))"),
    ])  # fmt: skip
    child = apply_edits(PARENT, parse_edits(answer))
    assert "self.drop = nn.Dropout(0.1)" in child and "return self.drop(self.act(" in child
    compile(child, "child.py", "exec")


def test_trailing_whitespace_and_blank_edges_do_not_matter():
    answer = block("\n        self.act = nn.GELU()   \n", "        self.act = nn.ReLU()")
    assert "nn.ReLU()" in apply_edits(PARENT, parse_edits(answer))


@pytest.mark.parametrize(
    "answer, reason",
    [
        (block("        self.act = nn.Tanh()", "x"), "not in the parent"),
        (block("    def forward(self, x: torch.Tensor) -> torch.Tensor:", "x"), "occurs 2 times"),
        (block("", "x"), "SEARCH is empty"),
        ("Here is the code: nothing to apply", "no SEARCH/REPLACE block"),
        # the right first line but different lines after it: the reason says where it is
        (block("        self.act = nn.GELU()\n        self.extra = 1", "x"), "its first line is at line"),
        # indentation is meaning in Python: a SEARCH with other indentation is not in the parent
        (block("self.act = nn.GELU()", "x"), "not in the parent"),
    ],
)
def test_an_edit_that_does_not_apply_is_refused_with_its_reason(answer, reason):
    with pytest.raises(EditError, match=reason):
        apply_edits(PARENT, parse_edits(answer))


def test_a_later_block_that_fails_names_itself():
    answer = block("        self.act = nn.GELU()", "        self.act = nn.ReLU()") + "\n" + block("nope", "x")
    with pytest.raises(EditError, match="block 2 of 2"):
        apply_edits(PARENT, parse_edits(answer))


def test_a_whole_file_is_not_taken_for_edits():
    assert not has_edits("```python\n" + PARENT + "\n```")


def test_summary_names_layers_and_knobs_not_the_first_line():
    s = summary(PARENT)
    assert not s.startswith(("import", '"""'))
    assert "Conv1d" in s and "Linear" in s and "width=32" in s and "depth=4" in s
    assert len(summary("import torch\n" * 400)) <= 160
    assert summary("def (broken") == "def (broken"


# -- asking for a child: the edit form, the one re-ask, the whole-file form --------------------------
class _Study:
    def __init__(self, answers):
        from conftest import ScriptedLLM

        self.llm = ScriptedLLM(answers)


def _ask(study):
    from fairnad.search.common import ask_code

    return ask_code(study, "change it", temperature=0.0, max_tokens=100, seed=1, purpose="t", parent=PARENT)


def test_a_failed_edit_is_asked_again_once_with_its_reason():
    good = block("        self.act = nn.GELU()", "        self.act = nn.SiLU()")
    study = _Study([block("        self.act = nn.Tanh()", "x"), good])
    code, _, how = _ask(study)
    assert "nn.SiLU()" in code and how == {"answer": "edits", "edits": 1, "reasked": True,
                                           "edit_error": how["edit_error"], "attempts": 2}  # fmt: skip
    reask = study.llm.requests[1][-1]["content"]
    assert "the SEARCH text is not in the parent" in reask and "copied exactly" in reask
    study = _Study([block("nope", "x"), block("still nope", "x")])
    code, text, how = _ask(study)
    assert code is None and "the change could not be applied" in text and len(study.llm.requests) == 2


def test_a_whole_file_is_accepted_and_a_lost_import_is_kept():
    retyped = PARENT.replace("import torch\n", "").replace("nn.GELU()", "nn.ReLU()")
    code, _, how = _ask(_Study(["Here it is:\n```python\n" + retyped + "```"]))
    assert how["answer"] == "file"
    compile(code, "c.py", "exec")
    assert "import torch\n" in code and "nn.ReLU()" in code and "nn.GELU()" not in code


def test_a_changed_class_alone_is_merged_into_the_parent():
    block_ = PARENT[PARENT.index("class ConvBlock1d"):PARENT.index("class Mnist1dCNN")].replace(
        "self.act = nn.GELU()", "self.act = nn.GELU()\n        self.se = SqueezeExcite(cout)").replace(
        "return self.act(self.bn(self.conv(x)))", "return self.se(self.act(self.bn(self.conv(x))))")
    se = ("class SqueezeExcite(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
          "        self.fc = nn.Linear(c, c)\n\n    def forward(self, x):\n"
          "        return x * torch.sigmoid(self.fc(x.mean(-1))).unsqueeze(-1)\n")
    code, _, how = _ask(_Study([f"I add squeeze-and-excitation.\n```python\n{se}\n{block_}```"]))
    assert how == {"answer": "definitions", "replaced": ["ConvBlock1d"], "added": ["SqueezeExcite"], "attempts": 1}
    assert code.index("class SqueezeExcite") < code.index("class ConvBlock1d") < code.index("def build_model")
    assert code.count("class ConvBlock1d") == 1 and code.startswith('"""A 1-D CNN')
    ns: dict = {}
    exec(compile(code, "child.py", "exec"), ns)  # (our own test fixture's code, not generated code)
    import torch

    assert ns["build_model"]()(torch.zeros(2, 1, 40)).shape == (2, 10)


def test_code_without_definitions_is_refused():
    study = _Study(["```python\nmodel = build_model()\nprint(model)\n```", "no code at all"])
    code, text, how = _ask(study)
    assert code is None and "no code block" in text and "no code block" in how["edit_error"]
    assert len(study.llm.requests) == 2 and "defines no class or function" in study.llm.requests[1][-1]["content"]


def test_a_renamed_network_leaves_no_dead_classes_behind():
    new = ("class Tiny(nn.Module):\n    def __init__(self, num_classes):\n        super().__init__()\n"
           "        self.fc = nn.Linear(40, num_classes)\n\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n\n\n"
           "def build_model(num_classes: int = 10, in_chans: int = 1, width: int = 32):\n    return Tiny(num_classes)\n")
    code, _, how = _ask(_Study([f"```python\n{new}```"]))
    assert "class Tiny" in code and "class Mnist1dCNN" not in code and "class ConvBlock1d" not in code
    assert code.startswith('"""A 1-D CNN') and "import torch" in code  # the parent's header and imports stay
    compile(code, "c.py", "exec")


def test_a_class_written_without_its_forward_keeps_the_parents():
    init_only = ("class ConvBlock1d(nn.Module):\n    def __init__(self, cin: int, cout: int, stride: int, kernel_size: int = 5):\n"
                 "        super().__init__()\n        self.conv = nn.Conv1d(cin, cout, kernel_size, stride=stride, "
                 "padding=kernel_size // 2, bias=False)\n        self.bn = nn.BatchNorm1d(cout)\n        self.act = nn.SiLU()\n")
    code, _, how = _ask(_Study([f"```python\n{init_only}```"]))
    assert how["replaced"] == ["ConvBlock1d"] and "nn.SiLU()" in code
    block_ = code[code.index("class ConvBlock1d"):code.index("class Mnist1dCNN")]
    assert "def forward(self, x: torch.Tensor)" in block_  # the parent's forward, kept
    ns: dict = {}
    exec(compile(code, "child.py", "exec"), ns)  # (our own test fixture's code, not generated code)
    import torch

    assert ns["build_model"]()(torch.zeros(2, 1, 40)).shape == (2, 10)


def test_inferred_input_sizes_keep_the_layers_and_their_outputs():
    import torch

    from fairnad.space.code import infer_input_sizes

    src = """import torch
from torch import nn
from torch.nn import Linear


class Net(nn.Module):
    def __init__(self, c=8, num_classes=10):
        super().__init__()
        self.conv = nn.Conv1d(1, c, 3, padding=1)
        self.bn = nn.BatchNorm1d(num_features=c)
        self.dw = torch.nn.Conv1d(c, c, 3, groups=c, padding=1)
        self.head = Linear(c * 3, num_classes)  # wrong: c arrives
        self.extra = nn.Conv1d(*[c, c, 1])  # the input size cannot be told: left alone

    def forward(self, x):
        return self.head(self.dw(self.bn(self.conv(x))).mean(-1))


def build_model(num_classes=10, in_chans=1):
    return Net(num_classes=num_classes)
"""
    code, changed = infer_input_sizes(src)
    assert changed == 4
    assert "nn.LazyConv1d(c, 3, padding=1)" in code and "nn.LazyBatchNorm1d()" in code
    assert "torch.nn.LazyConv1d(c, 3, groups=c, padding=1)" in code and "torch.nn.LazyLinear(num_classes)" in code
    assert "nn.Conv1d(*[c, c, 1])" in code
    ns: dict = {}
    exec(compile(code, "candidate.py", "exec"), ns)
    model = ns["build_model"]()
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)
    assert infer_input_sizes("import torch\nx = torch.zeros(3)\n") is None
    assert infer_input_sizes("def broken(:\n") is None


# -- build_model's defaults: kept from the parent beside a change of the network ----------------------
SCALED = PARENT.replace("width: int = 32, depth: int = 4, kernel_size: int = 5):\n    return",
                        "width: int = 32, depth: int = 5, kernel_size: int = 3):\n    return")


def test_a_child_that_reverts_the_parents_scaling_beside_its_change_gets_the_parents_defaults():
    assert SCALED != PARENT  # the parent was scaled through build_model's arguments
    retyped = PARENT.replace("self.act = nn.GELU()", "self.act = nn.SiLU()")  # SiLU, and depth/kernel drifted back
    code, kept = restore_defaults(SCALED, retyped)
    assert kept == {"depth": 5, "kernel_size": 3}
    assert builder_defaults(code) == builder_defaults(SCALED) and "nn.SiLU()" in code


def test_a_child_whose_only_change_is_the_defaults_keeps_them():
    deeper = SCALED.replace("depth: int = 5, kernel_size: int = 3):\n    return", "depth: int = 6, kernel_size: int = 3):\n    return")
    assert restore_defaults(SCALED, deeper) == (deeper, {})
    assert restore_defaults(SCALED, SCALED) == (SCALED, {})


def test_asked_to_keep_them_an_answer_that_drifts_back_is_read_with_the_parents_defaults():
    from fairnad.search.common import ask_code

    retyped = PARENT.replace("self.act = nn.GELU()", "self.act = nn.SiLU()")
    for keep, depth in ((True, 5), (False, 4)):
        code, _, how = ask_code(_Study([f"```python\n{retyped}```"]), "apply SiLU", temperature=0.0, max_tokens=100,
                                seed=1, purpose="t", parent=SCALED, keep_defaults=keep)  # fmt: skip
        assert builder_defaults(code)["depth"] == depth and "nn.SiLU()" in code
        assert how.get("defaults_kept") == ({"depth": 5, "kernel_size": 3} if keep else None)
