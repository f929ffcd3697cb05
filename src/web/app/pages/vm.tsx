// Placeholder: the page is being built (issue 29).
export function VmPage() {
  return (
    <section>
      <h1>VM</h1>
    </section>
  );
}
