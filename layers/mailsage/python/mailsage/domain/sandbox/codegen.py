"""The compile-time half of the sandbox: a code generator that counts loop iterations and macro
bodies, measures `~` concatenations, and checks constant folding against the same limits."""

from __future__ import annotations

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst

from mailsage.domain.sandbox.budget import BYTES_PER_STEP, LimitExceeded


def _weight(body: list[nodes.Node]) -> tuple[int, int]:
    """(steps, text) of running `body` once, nested loops and macros aside (they charge their own):
    a step per 4 expression nodes (an attribute lookup, a test, a filter...), and its constant text."""
    count = text = 0
    for top in body:
        for node in (top, *top.find_all(nodes.Node)):
            count += 1
            if isinstance(node, nodes.TemplateData):
                text += len(node.data)
    return 1 + count // 4 + text // BYTES_PER_STEP, text


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with loops counted, `~` checked and constant folding checked."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        steps, text = _weight(node.body)
        node.iter = _env_call(
            "counted_loop", node.iter, nodes.Const(steps), nodes.Const(text), lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        # The calls this generator adds are direct calls to the environment's own functions, not
        # template code to sandbox (templates cannot name environment attributes).
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name in _OWN_CALLS:
            self.write(f"environment.{node.node.name}(")
            for arg in node.args:
                self.visit(arg, frame)
                self.write(", ")
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Macro(self, node: nodes.Macro, frame: Frame) -> None:
        self._charge_first(node)
        super().visit_Macro(node, frame)

    def visit_CallBlock(self, node: nodes.CallBlock, frame: Frame) -> None:
        self._charge_first(node)  # the caller() body
        super().visit_CallBlock(node, frame)

    def _charge_first(self, node: nodes.Macro | nodes.CallBlock) -> None:
        steps, text = _weight(node.body)
        charge = _env_call("charge_body", nodes.Const(steps), nodes.Const(text), lineno=node.lineno)
        node.body = [nodes.Output([charge], lineno=node.lineno), *node.body]

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own choice of join function, called once the parts are measured.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        # The optimizer folds constant filters, and drops a fold that raised: a refused constant
        # (`'a'|center(10**9)`) is reported now, at compile time, rather than at every render.
        _refused_fold(node, frame)
        super().visit_Filter(node, frame)

    def _binop_checked(self, op: str, node: nodes.BinExpr, frame: Frame) -> None:
        try:
            left, right = node.left.as_const(frame.eval_ctx), node.right.as_const(frame.eval_ctx)
        except nodes.Impossible:
            return
        except Exception:  # noqa: BLE001 - folding an operand failed; the render will say why
            return
        self.environment.checks.binop(op, left, right)  # type: ignore[attr-defined]

    def visit_Add(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("+", node, frame)
        super().visit_Add(node, frame)

    def visit_Mul(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("*", node, frame)
        super().visit_Mul(node, frame)

    def visit_Pow(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("**", node, frame)
        super().visit_Pow(node, frame)

    def visit_Mod(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("%", node, frame)
        super().visit_Mod(node, frame)


_OWN_CALLS = frozenset({"counted_loop", "charge_body"})


def _env_call(name: str, *args: nodes.Node, lineno: int) -> nodes.Call:
    """`environment.<name>(*args)` as a template expression node."""
    return nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None, lineno=lineno)


def _refused_fold(node: nodes.Filter, frame: Frame) -> None:
    try:
        node.as_const(frame.eval_ctx)
    except nodes.Impossible as exc:
        if isinstance(exc.__cause__, LimitExceeded):
            raise exc.__cause__ from None
    except Exception:  # noqa: BLE001 - not foldable for another reason: left to the render
        pass
