// Placeholder: the page is being built (issue 29).
export function ToolsPage() {
  return (
    <section>
      <h1>Guest tools and retained copies</h1>
    </section>
  );
}
