"""Prints the README's node reference (Markdown) from the nodes' own INPUT_TYPES, RETURN_TYPES and tooltips.

    python tools/node_reference.py > /tmp/nodes.md
"""

from __future__ import annotations




def describe(kind, spec) -> str:
    options = spec[1] if len(spec) > 1 else {}
    if isinstance(kind, (list, tuple)):
        shown = ", ".join(f"`{v}`" for v in list(kind)[:6]) + (", ..." if len(kind) > 6 else "")
        kind = f"one of {shown}"
    default = f" (default `{options['default']}`)" if "default" in options else ""
    return f"{kind}{default}"


def main() -> None:
    import diffusion_vas as pack
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        display = pack.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)
        print(f"### `{name}` ({display})\n\n{cls.DESCRIPTION}\n")
        print("| input | type | what it is |\n|---|---|---|")
        for group, inputs in cls.INPUT_TYPES().items():
            if group == "hidden":
                continue
            for input_name, spec in inputs.items():
                options = spec[1] if len(spec) > 1 else {}
                tags = [tag for tag, on in (("optional", group == "optional"), ("advanced", options.get("advanced")))
                        if on]
                optional = f" ({', '.join(tags)})" if tags else ""
                tooltip = options.get("tooltip", "")
                print(f"| `{input_name}`{optional} | {describe(spec[0], spec)} | {tooltip} |")
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        tips = getattr(cls, "OUTPUT_TOOLTIPS", ("",) * len(names))
        print("\n| output | type | what it is |\n|---|---|---|")
        for out_name, out_type, tip in zip(names, cls.RETURN_TYPES, tips):
            print(f"| `{out_name}` | {out_type} | {tip} |")
        print()


if __name__ == "__main__":
    main()
