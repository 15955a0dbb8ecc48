"""Regenerate the PDF fixture: ``python tests/knowledge/make_fixtures.py``.

The PDF is committed so tests need no PDF writer; reportlab (BSD) is only needed to rebuild it.
``invariant=1`` keeps the output byte-identical between runs (no timestamps or random IDs).
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).parent / "fixtures" / "docs"
PDF_NAME = "dental_insurance_payment.pdf"
TITLE = "Insurance, payment and billing at Maple Grove Dental"

# (heading, paragraphs). Kept as data so the test can check what must come out of the PDF.
SECTIONS: list[tuple[str, list[str]]] = [
    (
        "Insurance plans we accept",
        [
            "Maple Grove Dental works with most major dental insurers, including Denplan, "
            "Simplyhealth, Bupa Dental Cover and AXA Health. If your plan is on this list we "
            "send the claim to the insurer for you after each visit, so you only pay the "
            "part your policy does not cover.",
            "For other insurers you pay us in full on the day and we give you an itemised "
            "receipt to send to your insurer yourself. Please check your policy's annual "
            "limit and waiting periods before starting a course of treatment, because "
            "insurers will not pay for treatment started before cover began.",
        ],
    ),
    (
        "Paying for your treatment",
        [
            "We take payment at the end of every appointment. We accept debit and credit "
            "cards, Apple Pay and Google Pay, and bank transfers for treatment plans paid in "
            "advance. We no longer accept cheques. Prices are reviewed every April and the "
            "price you were quoted in a written treatment plan is honoured for six months.",
            "Treatment that involves work from a dental laboratory, such as crowns, bridges, "
            "veneers, dentures and whitening trays, needs a deposit of 50 percent when the "
            "impressions are taken. The deposit covers the laboratory fees and is not "
            "refundable once the work has been sent to the laboratory.",
        ],
    ),
    (
        "Spreading the cost",
        [
            "For courses of treatment costing more than 500 pounds we offer interest-free "
            "finance over 6 or 12 months, arranged through Tabeo. The application takes about "
            "five minutes at reception, you need to be over 18 with a UK bank account, and "
            "the lender runs a credit check. Longer terms of up to 36 months are available "
            "at 9.9 percent APR for implant treatment.",
            "Our practice membership plan costs 16.50 pounds a month and covers two check-ups "
            "and two hygiene visits a year, X-rays, and a 10 percent discount on other "
            "treatment. Members also get cover for dental accidents and emergencies "
            "worldwide, up to 800 pounds a year.",
        ],
    ),
    (
        "Refunds and complaints about fees",
        [
            "If you think you have been charged incorrectly, speak to our practice manager, "
            "Helen Briggs, who will look into it within five working days. Overpayments are "
            "refunded to the card you paid with. If a treatment fails within one year for a "
            "reason that is our fault, we redo it free of charge.",
        ],
    ),
]


def build_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=TITLE,
        author="Maple Grove Dental",
        invariant=1,
    )
    story: list[object] = [Paragraph(TITLE, styles["Title"]), Spacer(1, 12)]
    for i, (heading, paragraphs) in enumerate(SECTIONS):
        if i == 2:
            story.append(PageBreak())  # two pages, so page joining is exercised
        story.append(Paragraph(heading, styles["Heading2"]))
        story += [Paragraph(p, styles["BodyText"]) for p in paragraphs]
    doc.build(story)


if __name__ == "__main__":
    target = DOCS / PDF_NAME
    build_pdf(target)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
