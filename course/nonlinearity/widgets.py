"""Interactive explorers for the notebooks, built on ipywidgets.

Each explorer first displays a static figure of its initial state, so a notebook executed
headless (tests, nbgrader, the static site) still shows a real picture. Below it come the
controls; moving one redraws that same figure in place (an IPython display update), so a
student with a live kernel sees one figure that follows the sliders. Without a frontend the
widgets are still built, and nothing fails.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Mapping

import ipywidgets as ipw
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from nonlinearity import plots

SliderSpec = tuple[float, float, float, float]  # (min, max, step, default); all int: IntSlider


def _figure_image(fig) -> Image:
    """Render a Figure to a PNG image and close it, so the inline backend does not show it too."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return Image(data=buffer.getvalue(), format="png")


def _sliders(specs: Mapping[str, SliderSpec] | None) -> dict[str, ipw.FloatSlider]:
    sliders = {}
    for name, (lo, hi, step, default) in (specs or {}).items():
        if not lo <= default <= hi:
            raise ValueError(f"slider {name!r}: default {default} is outside [{lo}, {hi}]")
        # All four given as ints (e.g. a depth or a width): an integer slider.
        integer = all(isinstance(v, int) for v in (lo, hi, step, default))
        slider_type = ipw.IntSlider if integer else ipw.FloatSlider
        sliders[name] = slider_type(
            value=default, min=lo, max=hi, step=step, description=name,
            continuous_update=False, readout_format="d" if integer else ".3g",
            style={"description_width": "initial"},
        )
    return sliders


class _Explorer:
    """A redraw function, its controls and the display handle it updates (testable headless)."""

    def __init__(self, draw: Callable[..., object], controls: dict[str, ipw.ValueWidget],
                 title: str = ""):
        self.draw = draw
        self.controls = controls
        self.title = title
        self.messages = ipw.Output()  # errors raised while redrawing land here, not in stderr
        self.handle = None
        self._has_message = False
        for control in controls.values():
            control.observe(self._on_change, names="value")

    def values(self) -> dict[str, object]:
        return {name: control.value for name, control in self.controls.items()}

    def image(self) -> Image:
        return _figure_image(self.draw(**self.values()))

    def _on_change(self, _change) -> None:
        if self._has_message:
            self.messages.clear_output()
            self._has_message = False
        try:
            picture = self.image()
        except Exception as error:  # shown beside the sliders; the figure keeps its last state
            with self.messages:
                print(f"Could not redraw: {type(error).__name__}: {error}")
            self._has_message = True
            return
        if self.handle is not None:
            self.handle.update(picture)

    def box(self) -> ipw.VBox:
        children = []
        if self.title:
            children.append(ipw.HTML(f"<b>{self.title}</b>"))
        children.extend(self.controls.values())
        children.append(self.messages)
        return ipw.VBox(children)

    def show(self) -> None:
        self.handle = display(self.image(), display_id=True)
        display(self.box())


def _accepted_kwargs(fn: Callable, values: Mapping[str, object]) -> dict[str, object]:
    """The slider values that fn names as parameters (a bare **kwargs does not count).

    So one explorer can hold Leaky ReLU (which takes `negative_slope`) next to ReLU (which
    does not), and each function gets only what it asks for.
    """
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass nothing
        return {}
    named = {
        name for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {k: v for k, v in values.items() if k in named}


def _activation_draw(functions, x, title):
    names = list(functions)

    def draw(activation=names[0], **params):
        fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
        # The other activations stay in the background, thin and grey, for comparison.
        others = [name for name in names if name != activation]
        label = others[0] if len(others) == 1 else "the others"
        for name in names:
            if name == activation:
                continue
            fn, grad = functions[name]
            try:
                y = np.asarray(fn(x, **_accepted_kwargs(fn, params)))
                dy = np.asarray(grad(x, **_accepted_kwargs(grad, params)))
            except NotImplementedError:
                continue
            ax_f.plot(x, y, color="0.7", linewidth=1, label=label)
            ax_d.plot(x, dy, color="0.7", linewidth=1, label=label)
            label = None
        color = plots.PALETTE[names.index(activation) % len(plots.PALETTE)]
        fn, grad = functions[activation]
        try:
            y = np.asarray(fn(x, **_accepted_kwargs(fn, params)))
            dy = np.asarray(grad(x, **_accepted_kwargs(grad, params)))
        except NotImplementedError:
            for ax in (ax_f, ax_d):
                ax.text(0.5, 0.5, f"implement {activation} first", ha="center",
                        transform=ax.transAxes)
        else:
            ax_f.plot(x, y, color=color, label=activation)
            ax_d.plot(x, dy, color=color, label=activation)
        setting = ", ".join(f"{k}={v:.3g}" for k, v in params.items())
        heading = f"{activation} ({setting})" if setting else activation
        plots._finish_axes(ax_f, title=f"{heading}: f(x)", xlabel="x", ylabel="f(x)")
        plots._finish_axes(ax_d, title=f"{heading}: f'(x)", xlabel="x", ylabel="f'(x)")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig

    return draw


def _build_activation_explorer(functions, *, params=None, title="", x=None) -> _Explorer:
    if not functions:
        raise ValueError("activation_explorer needs at least one (f, f') pair")
    x = plots._as_x(x)
    controls: dict[str, ipw.ValueWidget] = {}
    names = list(functions)
    if len(names) > 1:
        controls["activation"] = ipw.Dropdown(options=names, value=names[0],
                                              description="activation")
    controls.update(_sliders(params))
    # With one activation there is no drop-down: draw's default picks it.
    return _Explorer(_activation_draw(functions, x, title), controls, title)


def activation_explorer(
    functions: Mapping[str, tuple[Callable, Callable]],
    *,
    params: Mapping[str, SliderSpec] | None = None,
    title: str = "",
    x=None,
) -> None:
    """Display f and f' of the chosen activation, with a dropdown and optional sliders.

    functions: name -> (f, f_prime); each takes a float64 array of shape (n,), plus, as keyword
    arguments, the slider values it names as parameters (e.g. `negative_slope`), and returns
    shape (n,). A function that raises NotImplementedError is shown as "implement ... first".
    params: slider name -> (min, max, step, default). x: sample points (default [-5, 5]).
    The other activations are drawn thin and grey behind the chosen one.
    """
    _build_activation_explorer(functions, params=params, title=title, x=x).show()


def slider_figure(
    draw: Callable[..., object],
    sliders: Mapping[str, SliderSpec],
    *,
    title: str = "",
) -> None:
    """Display draw(**defaults) as a static figure, then sliders that redraw it in place.

    draw: callable taking one keyword argument per slider and returning a matplotlib Figure.
    sliders: name -> (min, max, step, default).
    """
    _Explorer(draw, _sliders(sliders), title).show()


def relu_sum_explorer(
    fn: Callable = np.sin,
    *,
    lo: float = -np.pi,
    hi: float = np.pi,
    name: str = "sin(x)",
    max_units: int = 20,
    units: int = 3,
) -> None:
    """Display fn on [lo, hi] beside its best sum of ReLUs, with a slider for the number of units.

    Each unit is ReLU(x - kink) with evenly spaced kinks; the output weights are fitted by
    least squares (plots.fit_relu_sum). The slider runs over 1 .. max_units units.
    """
    _relu_sum_explorer(fn, lo=lo, hi=hi, name=name, max_units=max_units, units=units).show()


def _relu_sum_explorer(fn, *, lo, hi, name, max_units, units) -> _Explorer:
    def draw(units=units):
        return plots.plot_relu_sum(fn, units, lo, hi, name=name,
                                   title=f"A sum of ReLUs approximating {name}")

    return _Explorer(draw, _sliders({"units": (1, max_units, 1, units)}),
                     f"Add ReLU units one at a time ({name} on [{lo:.3g}, {hi:.3g}])")
