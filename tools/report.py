"""The comparison report of a results folder, or plain tables of evaluated models.

  python tools/report.py results/tiny [--out-dir DIR] [--readme README.md --readme-tag tiny] [--no-plots]
      reads results/tiny/{eval,runs,stages} (trains nothing; layout in minillm/experiments/reading.py) and
      writes DIR/comparison.{md,csv,json} and DIR/plots/*.png (DIR defaults to the results
      folder); with --readme, replaces the text between `<!-- results:TAG:start -->` and
      `<!-- results:TAG:end -->` in that file by the main table, the paired differences (95% CI,
      p, Holm-adjusted p), the budget table with compute and the Rouge-L plot. The chance and
      constant-answer rows come from minillm/eval/references.py when the checkout has it.
      What the tests, reference rows and compute figures mean: docs/report.md.
      Prints the tables.

  python tools/report.py results/stories [--readme README.md --readme-tag stories]
      the stories preset's folder (tools/compare_to_teacher.py's comparison/comparison.md, no
      evaluate.py outputs): prints its table with the stage times; with --readme, puts both in
      that section.

  python tools/report.py EVAL_DIR... [--metrics rougeL ...] [--out table.md]
      every argument an evaluate.py output folder (or its summary.json): one table per metric,
      one row per model, mean ± std over generation seeds (greedy accuracy: its one value).

Exit status 1, with the reason, when nothing is evaluated or an input is unreadable.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from minillm.eval.summary import summary_table
from minillm.experiments.catalogue import METRICS
from minillm.experiments.comparison import (
    ReferenceFunctions,
    ReferenceUnavailable,
    build_comparison,
    first_rows,
    stages_in_run_order,
)
from minillm.experiments.plots import ROUGE_PLOT, write_plots
from minillm.experiments.reading import (
    ReportError,
    load_results,
    load_summary,
    read_json,
)
from minillm.experiments.rendering import (
    comparison_csv,
    comparison_markdown,
    format_duration,
    relative_link,
    replace_readme_section,
    results_section,
)
from minillm.fileio import atomic_write_json, atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="RESULTS_DIR | EVAL_DIR...",
                        help="a results folder, or evaluate.py output folders (or their summary.json)")
    report = parser.add_argument_group("comparison report (RESULTS_DIR)")
    report.add_argument("--out-dir", help="where comparison.{md,csv,json} and plots/ go (default: RESULTS_DIR)")
    report.add_argument("--readme", help="a markdown file whose results:TAG section gets the tables")
    report.add_argument("--readme-tag", help="TAG of the README's <!-- results:TAG:start/end --> markers")
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    tables = parser.add_argument_group("plain tables (EVAL_DIR...)")
    tables.add_argument("--metrics", nargs="+", choices=METRICS,
                        default=["rougeL", "exact_match", "accuracy_strict", "accuracy_flexible"])
    tables.add_argument("--out", help="also write the tables to this file")
    return parser


def is_evaluation_output(path: Path) -> bool:
    return path.name == "summary.json" or (path / "summary.json").is_file()


def plain_tables(args: argparse.Namespace) -> int:
    summaries = [load_summary(path) for path in args.paths]
    text = "\n".join(f"{metric} (mean ± std over generation seeds, or the one greedy value)\n\n"
                     f"{summary_table(summaries, metric)}" for metric in args.metrics)
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    return 0


def is_teacher_distance_folder(path: Path) -> bool:
    """The stories preset's results: tools/compare_to_teacher.py's table and no evaluate.py outputs."""
    return not (path / "eval").is_dir() and (path / "comparison/comparison.md").is_file() and (path / "stages").is_dir()


def teacher_distance_report(args: argparse.Namespace) -> int:
    root = Path(args.paths[0])
    stages = stages_in_run_order([read_json(path) for path in sorted(root.glob("stages/*.json"))
                                  if not path.name.endswith(".running.json")])
    times = " · ".join(f"{stage['name']} {format_duration(stage['seconds'])}" for stage in stages if "seconds" in stage)
    section = (root / "comparison/comparison.md").read_text() + (f"\nStage times: {times}.\n" if times else "")
    if args.readme:
        readme = Path(args.readme)
        if not readme.is_file():
            raise ReportError(f"no README at {readme}")
        atomic_write_text(readme, replace_readme_section(readme.read_text(), args.readme_tag, section, str(readme)))
        print(f"wrote the results:{args.readme_tag} section of {readme}\n")
    print(section, end="")
    return 0


# The evaluation side's reference rows (the report's package does not import the evaluation layer).
REFERENCES_MODULE = "minillm.eval.references"


def load_eval_set(set_name: str, path: str):
    """The eval set at `path` as evaluate.py loads it (imports the evaluation layer, and torch)."""
    from minillm.eval.evaluation import eval_set_path, load_eval_set as load
    path = Path(path)
    depth = len(eval_set_path(Path(), set_name).parts)
    root = path.parents[depth - 1] if len(path.parents) >= depth else None
    if root is None or eval_set_path(root, set_name) != path:
        raise ReferenceUnavailable(f"{path} is not where evaluate.py keeps eval set {set_name!r}")
    return load(root, set_name)


def reference_functions() -> ReferenceFunctions:
    """The chance and constant-answer rows from minillm/eval/references.py, over the rows the
    summaries scored; when that module is not in the checkout, the reason instead."""
    if importlib.util.find_spec(REFERENCES_MODULE) is None:
        return ReferenceFunctions(unavailable=f"{REFERENCES_MODULE.replace('.', '/')}.py is not in this checkout")
    references = importlib.import_module(REFERENCES_MODULE)

    def chance(set_name: str, source: dict) -> dict:
        return references.chance_accuracy(first_rows(load_eval_set(set_name, source["path"]), source["rows"]))

    def constant_answer(set_name: str, source: dict) -> dict:
        answers, entry = references.constant_answer_summary(
            first_rows(load_eval_set(set_name, source["path"]), source["rows"]))
        return {"answers": {str(family): text for family, text in answers.items()}, "entry": entry}

    return ReferenceFunctions(chance, constant_answer)


def comparison_report(args: argparse.Namespace) -> int:
    results = load_results(args.paths[0])
    out_dir = Path(args.out_dir or args.paths[0])
    comparison = build_comparison(results, references=reference_functions())
    plots_dir = out_dir / "plots"
    readme_text = None
    if args.readme:
        # Settle the README before writing anything, so missing markers leave no half-updated outputs.
        readme = Path(args.readme)
        if not readme.is_file():
            raise ReportError(f"no README at {readme}")
        section = results_section(
            comparison, plot_link=None if args.no_plots else relative_link(plots_dir / ROUGE_PLOT, readme.parent),
            report_link=relative_link(out_dir / "comparison.md", readme.parent))
        readme_text = replace_readme_section(readme.read_text(), args.readme_tag, section, str(readme))
    plots = {}
    if not args.no_plots:
        plot_paths = write_plots(comparison, results, plots_dir)
        plots = {title: relative_link(path, out_dir) for title, path in plot_paths.items()}
        comparison["plots"] = plots
    atomic_write_json(out_dir / "comparison.json", comparison)
    atomic_write_text(out_dir / "comparison.csv", comparison_csv(comparison))
    atomic_write_text(out_dir / "comparison.md", comparison_markdown(comparison, plots))
    if readme_text is not None:
        atomic_write_text(args.readme, readme_text)
    written = [str(out_dir / f"comparison.{ext}") for ext in ("md", "csv", "json")]
    written += [str(out_dir / path) for path in plots.values()]
    if readme_text is not None:
        written.append(f"the results:{args.readme_tag} section of {args.readme}")
    print("wrote " + ", ".join(written))
    print()
    print(results_section(comparison), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths]
    plain = all(is_evaluation_output(path) for path in paths)
    if not plain and len(paths) > 1:
        parser.error("several paths must each be an evaluate.py output folder (with summary.json); "
                     f"these are not: {', '.join(str(p) for p in paths if not is_evaluation_output(p))}")
    if plain and (args.out_dir or args.readme or args.readme_tag or args.no_plots):
        parser.error("--out-dir, --readme, --readme-tag and --no-plots are for a results folder, not EVAL_DIRs")
    if not plain and args.out:
        parser.error("--out is for EVAL_DIRs; a results folder's report goes to --out-dir")
    if bool(args.readme) != bool(args.readme_tag):
        parser.error("--readme and --readme-tag go together")
    try:
        if plain:
            return plain_tables(args)
        if is_teacher_distance_folder(paths[0]):
            if args.out_dir or args.no_plots:
                parser.error("--out-dir and --no-plots are for a comparison report, not the stories preset's table")
            return teacher_distance_report(args)
        return comparison_report(args)
    except (ReportError, FileNotFoundError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
