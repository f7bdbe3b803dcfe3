from pathlib import Path

import pytest

from deepfake_lab.report.html import ReportImage, Section, Table, write_report


def test_write_report_escapes_and_includes_content(tmp_path):
    sections = [
        Section(
            heading="Samples & <metrics>",
            paragraphs=["FD-R56 is not FID", 'a "quoted" <b>word</b>'],
            tables=[
                Table(
                    header=["kimg", "FD-R56"],
                    rows=[[200, 12.3456789], [400, "n/a"]],
                    caption="metrics",
                )
            ],
            images=[
                ReportImage("samples/grid-000200.png", caption="fakes at 200 kimg"),
                ReportImage(Path("plots") / "loss.png"),
            ],
        )
    ]
    p = write_report(tmp_path / "index.html", "<script>alert(1)</script>", sections)
    text = p.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Samples &amp; &lt;metrics&gt;" in text
    assert "&lt;b&gt;word&lt;/b&gt;" in text and "&quot;quoted&quot;" in text
    assert '<img src="samples/grid-000200.png"' in text
    assert '<img src="plots/loss.png"' in text
    assert "<figcaption>fakes at 200 kimg</figcaption>" in text
    assert "<th>FD-R56</th>" in text
    assert '<td class="num">200</td>' in text and '<td class="num">12.3457</td>' in text
    assert "<td>n/a</td>" in text
    assert "http" not in text  # no external assets


def test_image_paths_are_quoted_and_must_be_relative(tmp_path):
    s = Section("x", images=[ReportImage('a b/"c".png')])
    text = write_report(tmp_path / "r.html", "t", [s]).read_text()
    assert 'src="a%20b/%22c%22.png"' in text
    with pytest.raises(ValueError):
        write_report(tmp_path / "r.html", "t", [Section("x", images=[ReportImage("/etc/a.png")])])


def test_empty_report(tmp_path):
    text = write_report(tmp_path / "deep" / "index.html", "Empty", []).read_text()
    assert "<h1>Empty</h1>" in text and text.rstrip().endswith("</html>")
