"""The eval card: sections as data (render), drawn by Jinja2 templates (templates/) into Markdown
and self-contained HTML; card builds the full card, utility the classifier's section.
"""
