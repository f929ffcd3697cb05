// Placeholder: the page is being built (issue 29).
export function PlacementPage() {
  return (
    <section>
      <h1>Placement</h1>
    </section>
  );
}
