function applyFilters(){
  var cat=document.getElementById('f-cat').value;
  var wrong=document.getElementById('f-wrong').checked;
  var text=document.getElementById('f-text').value.toLowerCase();
  var shown=0;
  document.querySelectorAll('.card').forEach(function(c){
    var s=parseFloat(c.getAttribute('data-score'));
    var hay=(c.querySelector('.q').textContent+' '+c.querySelector('.cap').textContent+' '+
             c.querySelector('.pred').textContent).toLowerCase();
    var ok=(!cat||c.getAttribute('data-category')===cat)&&(!wrong||s<1)&&(!text||hay.indexOf(text)>=0);
    c.style.display=ok?'':'none';
    if(ok){shown++;}
  });
  document.getElementById('f-count').textContent=shown+' shown';
}
document.addEventListener('DOMContentLoaded',function(){
  ['f-cat','f-wrong','f-text'].forEach(function(id){
    var el=document.getElementById(id);
    el.addEventListener('input',applyFilters);el.addEventListener('change',applyFilters);
  });
  applyFilters();
});
